"""`python -m nas.train --workers 2`: one real Ray Train run, two data-parallel CPU workers, one epoch
on a tiny spec. Slow: a private Ray and its two workers are slow to start and stop on a 2-core CPU
(the times are in docs/benchmarks.md, Test suite)."""
import json

import torch

from helpers import DATA, run_cli
from helpers.data import TINY
from nas.core.spec import save_spec


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


def test_a_supernet_on_two_ray_train_workers_resumes_in_one_process(fashion_mnist, tmp_path):
    """Two data-parallel workers train epoch 1 (worker 0 writes the checkpoint); the same settings
    resume it on the workers for epoch 2, and the result scores its paths."""
    out = tmp_path / "sn"
    base = ["nas.supernet", "train", "--space", str(DATA / "tiny_space.yaml"), "--epochs", "2", "--train-images",
            "256", "--val-images", "64", "--batch-size", "32", "--paths", "2", "--bn-images", "32", "--threads", "1",
            "--workers", "2", "--data", str(fashion_mnist), "--out", str(out), "--json"]
    first = run_cli(*base, "--stop-after", "1", timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "training on 2 Ray Train workers (CPU, 16 images each per step)" in first.stderr
    r = json.loads(first.stdout.strip().splitlines()[-1])
    assert r["epochs"] == 1 and r["steps"] == 8 and r["workers"] == 2 and not r["finished"]
    ckpt = torch.load(out / "supernet.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["identity"]["workers"] == 2
    done = run_cli(*base, "--resume", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["finished"] and r["epochs"] == 2 and r["steps"] == 16 and 0 <= r["largest_accuracy"] <= 1
