"""The Python door: `nas.search`, `nas.Pipeline`, and a proxy and a device registered from Python
running through the whole pipeline."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import nas
from helpers import DATA
from nas.core.counts import count_macs, count_params
from nas.latency.predict import Prediction

TINY_SPACE = DATA / "tiny_space.yaml"


class ToyDevice:
    """A device whose latency is a quarter of a millisecond per million multiply-adds."""

    name = "toy"

    def predict(self, spec):
        return Prediction(*self.predict_many([spec])[0])

    def predict_many(self, specs):
        ms = np.array([count_macs(s) / 1e6 * 0.25 for s in specs])
        return np.stack([ms, ms * 0.97, ms * 1.03], axis=1)


class ToyProxy(nas.Proxy):
    """An 'accuracy' that grows with the parameter count (not cheap: its score is an accuracy, so
    the pipeline maps nothing onto it)."""

    name, cheap = "toy-params", False
    calls = 0

    def fingerprint(self):
        return "toy-params"

    def evaluate(self, spec):
        ToyProxy.calls += 1
        accuracy = float(1 - np.exp(-count_params(spec) / 2e6))
        return {"proxy": self.name, "score": accuracy, "accuracy": accuracy, "seconds": 0.0, "failed": False,
                "reason": None, "arch_hash": spec.content_hash()}


@pytest.fixture
def toys():
    nas.DEVICES.register("toy", lambda name, threads=1: ToyDevice(), help="a test's device")
    nas.PROXIES.register("toy-params", lambda name, context: ToyProxy(), help="a test's proxy")
    yield
    nas.DEVICES.unregister("toy")
    nas.PROXIES.unregister("toy-params")


def test_a_proxy_and_a_device_registered_from_python_run_through_the_pipeline(toys, tmp_path):
    ToyProxy.calls = 0
    result = nas.search(target_ms=0.15, space=str(TINY_SPACE), device="toy", proxy="toy-params", budget="smoke",
                        samples=24, baselines=[], deploy=[], out=tmp_path / "run")
    assert result.device == "toy" and result.run_dir == tmp_path / "run"
    assert result.predicted_ms == pytest.approx(ToyDevice().predict(result.final_spec).ms, abs=1e-3)
    assert result.predicted_ms <= 0.15 * 1.02
    assert ToyProxy.calls >= 24  # every sample scored by the toy proxy
    assert result.accuracy.seeds == 2 and 0 < result.accuracy.mean <= 1  # trained by the compare stage
    assert [r["kind"] for r in result.comparison] == ["final"]
    assert (tmp_path / "run" / "final.onnx").is_file() and result.report.is_file()
    # and the command line takes the names too, in this process (the registrations live here)
    assert "toy" in nas.DEVICES and "toy-params" in nas.PROXIES


def test_a_name_is_registered_once(toys):
    with pytest.raises(ValueError, match="registered already"):
        nas.PROXIES.register("toy-params", lambda name, context: ToyProxy())
    with pytest.raises(ValueError, match="registered already"):
        nas.DEVICES.register("pixel1" if "pixel1" in nas.DEVICES else "host", lambda name, threads=1: ToyDevice())
    nas.PROXIES.register("toy-params", lambda name, context: ToyProxy(), replace=True)


def test_registered_names_are_the_config_choices(toys):
    config = nas.run_config({"target_ms": 10.0, "proxy": "toy-params", "device": "toy"})
    assert config.proxy == "toy-params"
    with pytest.raises(nas.UserError, match="must be guided-evolution, controller") as err:
        nas.run_config({"target_ms": 10.0, "algorithm": "annealing"})
    assert err.value.setting == "algorithm" and err.value.source is None


def test_a_values_origin_is_the_file_key_the_flag_the_default_or_python(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("target_ms: 20\nbudget: smoke\nseed: 3\n")
    from nas.search.__main__ import parser
    from nas.pipeline.run_config import new_run_config

    config = new_run_config(parser().parse_args(["--config", str(config_file), "--seed", "4"]))
    assert [config.origin(k) for k in ("target_ms", "budget", "seed", "device")] == [
        f"{config_file}:target_ms", f"{config_file}:budget", "flag --seed", "default"]
    assert nas.Pipeline(target_ms=20).config.origin("target_ms") == "python"


def test_a_bad_value_in_a_config_file_is_one_line_naming_the_file_and_key(tmp_path):
    """From the one check of that key."""
    config_file = tmp_path / "run.yaml"
    config_file.write_text("target_ms: 20\nbudget: huge\n")
    proc = subprocess.run([sys.executable, "-m", "nas.search", "--config", str(config_file), "--out",
                           str(tmp_path / "never")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and not (tmp_path / "never").exists()
    assert proc.stderr.strip().splitlines() == [
        f"error: {config_file}: budget: must be smoke, default or paper, got 'huge'"]


def test_a_bad_value_from_python_gets_the_same_check_and_words():
    with pytest.raises(nas.UserError) as err:
        nas.Pipeline(target_ms=20, budget="huge")
    assert str(err.value) == "budget: must be smoke, default or paper, got 'huge'"
