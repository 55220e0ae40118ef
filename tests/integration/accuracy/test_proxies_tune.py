"""Training proxies as Ray Tune trials on a local Ray: per-epoch reports, checkpoints, results in order."""
import csv
from pathlib import Path

import pytest

from nas.accuracy import DataConfig, ProxyConfig, TrainConfig
from nas.core.spec import scale_width
from helpers.data import write_idx_dataset
from helpers.data import TINY

ray = pytest.importorskip("ray")


def test_evaluate_specs_on_a_local_ray(tmp_path):
    directory = write_idx_dataset(tmp_path / "fmnist", n=300)
    specs = [TINY, scale_width(TINY, 1.5, name="tiny_wide")]
    config = ProxyConfig(data=DataConfig(path=str(directory)),
                         train=TrainConfig(train_images=64, val_images=32, epochs=2, batch_size=32, bn_images=32))
    from nas.accuracy.tune_trials import evaluate_specs

    results = evaluate_specs(specs, config, cpus=2, run_dir=tmp_path / "runs", name="t")
    assert not ray.is_initialized()  # the Ray it started is stopped again
    assert [r["arch_hash"] for r in results] == [s.content_hash() for s in specs]
    for r in results:
        assert not r["failed"] and r["epochs"] == 2 and not r["stopped_early"] and 0 <= r["accuracy"] <= 1
        trial = Path(r["trial_dir"])
        assert trial.is_relative_to(tmp_path / "runs")
        with open(trial / "progress.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(row["epoch"]) for row in rows] == [1, 2]  # one report per epoch, for ASHA
        assert float(rows[-1]["accuracy"]) == r["accuracy"]
        assert list(trial.glob("checkpoint_*/trainer.pt"))


def test_no_specs_needs_no_ray():
    from nas.accuracy.tune_trials import evaluate_specs

    assert evaluate_specs([], ProxyConfig()) == []
    assert not ray.is_initialized()
