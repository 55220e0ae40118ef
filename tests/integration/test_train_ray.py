"""`python -m nas.train --workers 2`: one real Ray Train run, two data-parallel CPU workers, one epoch
on a tiny spec. Slow: a private Ray and its two workers take 40-70 s to start and stop on a 2-core CPU."""
import json

import pytest
import torch

from helpers import run_cli
from helpers.data import TINY
from nas.core.spec import save_spec


@pytest.mark.slow
def test_two_ray_train_workers(fashion_mnist, tmp_path):
    spec = tmp_path / "tiny.yaml"
    save_spec(TINY, spec)
    out = tmp_path / "run"
    proc = run_cli("nas.train", str(spec), "--data", str(fashion_mnist), "--train-images", "320", "--val-images",
                   "200", "--batch-size", "32", "--epochs", "1", "--workers", "2", "--out", str(out),
                   "--no-progress", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["finished"] and r["workers"] == 2 and r["per_worker_batch"] == 16 and r["device"] == "ray"
    assert r["epochs"] == 1 and r["steps"] == 10 and 0 <= r["accuracy"] <= 1
    assert "training on 2 Ray Train workers" in proc.stderr
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)  # written by worker 0
    assert ckpt["epoch"] == 1 and ckpt["step"] == 10 and ckpt["identity"]["workers"] == 2
    for name in ("weights.pt", "model.onnx", "spec.yaml", "train.json"):
        assert (out / name).is_file(), name
