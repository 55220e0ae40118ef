"""run_tune and trial_error without a Ray of their own (on a real local Ray:
tests/integration/runtime/test_tune_on_ray.py)."""
from __future__ import annotations

import pytest

pytest.importorskip("ray")

from nas.runtime.ray_tune import run_tune, trial_error  # noqa: E402


def never_runs(config):
    raise AssertionError("a trial started")


def test_run_tune_refuses_to_start_a_ray_of_its_own(tmp_path, monkeypatch):
    import ray

    # Whatever Ray an earlier test left running in this process, run_tune must see none here.
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(RuntimeError, match="ray_session"):
        run_tune(never_runs, name="x", storage=tmp_path, resources={"cpu": 1})
    assert not (tmp_path / "x").exists()  # refused before Tune began the experiment


def test_trial_error_of_a_trace_and_of_nothing(tmp_path):
    class Traced:  # a Trial whose exception could not be pickled: only error.txt's text
        def __init__(self, folder):
            self.pickled_error_file, self.error_file = folder / "error.pkl", folder / "error.txt"
            self.error_file.write_text("Failure # 1 (occurred at now)\nTraceback (most recent call last):\n"
                                       "  x\nOSError: disk full\n")

    assert trial_error(Traced(tmp_path)) == "trial error: OSError: disk full"
    assert trial_error(type("Ok", (), {"error": None})()) is None
    assert len(trial_error(type("Long", (), {"error": ValueError("x" * 1000)})())) == 300
