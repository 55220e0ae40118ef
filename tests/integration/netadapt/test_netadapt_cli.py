"""`python -m nas.netadapt --json` in a real process on a tiny spec: it reaches the target and writes its files."""
import json
from pathlib import Path

from helpers import run_cli
from helpers.netadapt import tiny  # noqa: F401 (fixture)
from nas.latency.devices import get_device


def test_cli_json(tiny, fashion_mnist, tmp_path):
    spec, path = tiny
    target = 0.95 * get_device("pixel1").predict(spec).ms
    proc = run_cli("nas.netadapt", "--spec", str(path), "--target-ms", f"{target:.4f}", "--device", "pixel1",
                   "--budget", "smoke", "--train-images", "128", "--val-images", "64", "--steps", "1",
                   "--final-steps", "2", "--threads", "1", "--data", str(fashion_mnist), "--out", str(tmp_path),
                   "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"latency_ms", "spec_path", "iterations", "accuracy", "reached", "weights_path"} <= set(result)
    assert result["latency_ms"] <= target and result["iterations"] >= 1 and result["reached"]
    assert Path(result["spec_path"]).is_file() and Path(result["weights_path"]).is_file()
