"""The compare stage: rows with noise, paired differences, the verdict, and trainings that resume."""
from dataclasses import replace
from types import SimpleNamespace

import pytest

from nas.budgets import get_budget
from nas.core.spec import scale_width
from nas.core.spec_file import load_spec
from nas.latency.devices import get_device
from nas.pipeline import compare
from nas.runtime.jsonl import read_jsonl
from nas.runtime.paths import REFERENCE_DIR

PIXEL1 = get_device("pixel1")
LARGE = load_spec(REFERENCE_DIR / "mobilenetv3_large.yaml")
SCALED = scale_width(LARGE, 0.9, name="large_x0.9")


def networks():
    return [{"name": "final", "kind": "final", "spec": LARGE, "note": ""},
            {"name": SCALED.name, "kind": "width_scaled", "spec": SCALED, "note": "width x0.9"}]


def trainings(final, baseline):
    return {**{("final", s): {"accuracy": a, "failed": False} for s, a in enumerate(final)},
            **{("width_scaled", s): {"accuracy": a, "failed": False} for s, a in enumerate(baseline)}}


def test_rows_carry_mean_sd_seeds_and_the_paired_difference():
    out = compare.comparison(networks(), trainings([0.80, 0.81, 0.82], [0.79, 0.80, 0.805]), [0, 1, 2], PIXEL1, 50.0)
    final, scaled = out["rows"]
    assert final["kind"] == "final" and "difference" not in final
    assert final["accuracy_mean"] == pytest.approx(0.81) and final["accuracy_sd"] == pytest.approx(0.01)
    assert final["seeds"] == 3 and final["accuracies"] == [0.80, 0.81, 0.82]
    assert scaled["latency_ms"] == pytest.approx(PIXEL1.predict(SCALED).ms, abs=1e-3)
    assert scaled["latency_vs_target_pct"] == pytest.approx(100 * (PIXEL1.predict(SCALED).ms / 50 - 1), abs=0.01)
    d = scaled["difference"]
    assert d["mean"] == pytest.approx(0.035 / 3) and d["ci_low"] > 0 and scaled["judgement"] == "better"
    assert out["verdict"].startswith("The final network is better than large_x0.9")


def test_a_difference_inside_the_noise_is_called_indistinguishable():
    out = compare.comparison(networks(), trainings([0.800, 0.812, 0.806], [0.804, 0.806, 0.809]), [0, 1, 2],
                             PIXEL1, 50.0)
    assert out["rows"][1]["judgement"] == "indistinguishable"
    assert "indistinguishable" in out["verdict"]


class FakeProxy:
    """A training proxy whose accuracy depends on the spec and the seed, counting its calls."""

    calls = 0

    def __init__(self, seed, train):
        self.seed, self.train = seed, train
        self.config = SimpleNamespace(device="cpu")

    def fingerprint(self):
        return f"{self.train.epochs}-{self.seed}"

    def evaluate(self, spec, weights_out=None):
        FakeProxy.calls += 1
        return {"accuracy": 0.5 + 0.01 * self.seed + (0.1 if spec.name == "final" else 0.0), "failed": False,
                "reason": None, "seconds": 0.1}


def test_trainings_resume_without_training_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "make_proxy", lambda name, budget, data, seed, train, threads: FakeProxy(seed, train))
    monkeypatch.setattr(compare, "available_cpus", lambda: 1)  # in this process: the fake cannot travel
    (tmp_path / "compare").mkdir()
    ctx = SimpleNamespace(run_dir=tmp_path, budget=get_budget("smoke"), prepared=SimpleNamespace(data=None))
    nets = [{**networks()[0], "spec": replace(LARGE, name="final")}, networks()[1]]
    FakeProxy.calls = 0
    first = compare.train_networks(nets, [0, 1], ctx)
    assert FakeProxy.calls == 4 and first[("final", 1)]["accuracy"] == pytest.approx(0.61)
    again = compare.train_networks(nets, [0, 1], ctx)
    assert FakeProxy.calls == 4 and again == first
    assert len(read_jsonl(tmp_path / "compare" / "trainings.jsonl")) == 4
    # A third seed trains only what is missing.
    compare.train_networks(nets, [0, 1, 2], ctx)
    assert FakeProxy.calls == 6


def test_budgets_name_their_seeds_and_baselines():
    assert get_budget("smoke").accuracy.final_seeds >= 2 and get_budget("default").accuracy.final_seeds >= 3
    assert get_budget("smoke").baselines == ("width_scaled",)
    assert set(get_budget("default").baselines) == {"width_scaled"}
    assert compare.seeds_of(get_budget("default"), 7) == [21, 22, 23]
    # neighbouring run seeds share no training seed
    assert not set(compare.seeds_of(get_budget("default"), 0)) & set(compare.seeds_of(get_budget("default"), 1))


@pytest.mark.parametrize("name", ["host", "host:int8", "host-litert", "host-litert:int8"])
def test_a_host_device_is_checked_on_the_final_network(name):
    points, title = compare.latency_points(name, object(), None, measured=3.1, predicted=3.0)
    assert points == [{"name": "final", "predicted_ms": 3.0, "measured_ms": 3.1}] and title.startswith(name)


def test_a_calibrated_phone_is_checked_on_its_calibration_set():
    class Phone:
        info = {"networks": [{"network": "mobilenetv3_large", "fitted_ms": 51.0, "published_ms": 51.2}]}

    points, title = compare.latency_points("pixel1", Phone(), None, measured=3.1, predicted=50.0)
    assert points == [{"name": "mobilenetv3_large", "predicted_ms": 51.0, "measured_ms": 51.2}]
    assert "published" in title
