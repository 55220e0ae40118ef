"""run_tune and trial_error on a real local Ray (2 CPUs), with trainables that take no time."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray")

from ray import tune  # noqa: E402

from nas.runtime.session import ray_session  # noqa: E402
from nas.runtime.ray_tune import run_tune, trial_error  # noqa: E402


@pytest.fixture(scope="module")
def ray_local():
    import sys

    from ray import cloudpickle

    # Ray's workers cannot import this test module: send its trainables by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with ray_session(cpus=2):
        yield


def doubling(config):
    for step in range(3):
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "step").write_text(str(step))
            tune.report({"score": config["x"] * 2, "step": step}, checkpoint=tune.Checkpoint.from_directory(d))


def flaky(config):
    """Raises on its first attempt only: a marker file remembers the attempt across workers."""
    marker = Path(config["marker"])
    if not marker.exists():
        marker.write_text("failed once")
        raise ValueError("first attempt\nsecond line of the message")
    tune.report({"score": 1.0})


def always_raises(config):
    raise KeyError("no such thing")


def test_results_come_back_for_every_trial_with_one_checkpoint_each(ray_local, tmp_path):
    grid = run_tune(doubling, name="double", storage=tmp_path, resources={"cpu": 1},
                    param_space={"x": tune.grid_search([1, 2, 3])}, metric="score", mode="max")
    assert sorted(r.metrics["score"] for r in grid) == [2, 4, 6]
    assert all(trial_error(r) is None for r in grid)
    assert grid.get_best_result().config["x"] == 3
    for r in grid:
        assert Path(r.path).parent == (tmp_path / "double").resolve()
        assert len(list(Path(r.path).glob("checkpoint_*"))) == 1  # keep_checkpoints=1


def test_a_trial_that_raises_is_retried(ray_local, tmp_path):
    grid = run_tune(flaky, name="retry", storage=tmp_path, resources={"cpu": 1},
                    param_space={"marker": str(tmp_path / "marker")}, max_failures=1)
    [r] = list(grid)
    assert r.error is None and r.metrics["score"] == 1.0 and trial_error(r) is None


def test_a_trial_that_keeps_raising_fails_with_its_exception_as_the_reason(ray_local, tmp_path):
    seen = {}

    class Seen(tune.Callback):  # what a searcher or callback has while Tune runs: the Trial
        def on_trial_error(self, iteration, trials, trial, **info):
            seen["reason"] = trial_error(trial)

    grid = run_tune(flaky, name="fail", storage=tmp_path, resources={"cpu": 1},
                    param_space={"marker": str(tmp_path / "marker")}, max_failures=0, callbacks=[Seen()])
    [r] = list(grid)
    assert trial_error(r) == "trial error: ValueError: first attempt"
    assert seen["reason"] == "trial error: ValueError: first attempt"
    grid = run_tune(always_raises, name="key", storage=tmp_path, resources={"cpu": 1}, max_failures=1)
    assert trial_error(list(grid)[0]) == "trial error: KeyError: 'no such thing'"
