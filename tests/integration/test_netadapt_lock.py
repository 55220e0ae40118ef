"""One process at a time in a NetAdapt run directory: a second one there is refused at once, naming the first."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from helpers import REFERENCE, ROOT, assert_user_error
from helpers.interrupt import ENV
from nas.accuracy.datasets import FASHION_MNIST_DIR
from nas.core.spec import load_spec
from nas.latency.devices import get_device
from nas.runtime.jsonl import read_jsonl

needs_data = pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Fashion-MNIST is not installed")


@needs_data
def test_a_second_process_on_the_run_directory_is_refused(tmp_path):
    out = tmp_path / "na"
    spec = REFERENCE / "mobilenetv3_small.yaml"
    target = round(0.8 * get_device("pixel1").predict(load_spec(spec)).ms, 2)
    cmd = [sys.executable, "-m", "nas.netadapt", "--spec", str(spec), "--target-ms", str(target), "--out", str(out),
           "--budget", "smoke", "--steps", "2", "--final-steps", "0", "--delta", "0.05", "--seed-steps", "20",
           "--train-images", "256", "--val-images", "128", "--threads", "1"]
    log = out / "netadapt.jsonl"
    with open(tmp_path / "first.err", "w+") as first_err:
        first = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=first_err)
        try:
            deadline = time.monotonic() + 300
            while not (log.exists() and log.stat().st_size) and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)  # the start line is written under the lock: the first run has begun
            assert first.poll() is None, "the first run ended before a second could start"
            for extra in (["--resume"], []):  # continuing it, or starting it again
                t0 = time.monotonic()
                second = subprocess.run(cmd + extra, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
                waited = time.monotonic() - t0
                assert_user_error(second, str(out), f"pid {first.pid}", "NetAdapt", "--resume")
                assert first.poll() is None, "the first run ended while the second ran: nothing was tested"
                assert waited < 60, waited  # refused at once, not after a run of its own
            assert first.wait(timeout=600) == 0, first_err.seek(0) or first_err.read()[-2000:]
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
    records = read_jsonl(log)
    assert [r["type"] for r in records].count("start") == 1
    iterations = [r["iteration"] for r in records if r["type"] == "iteration"]
    assert iterations == list(range(len(iterations))) and len(iterations) >= 2  # none twice
    assert records[-1]["type"] == "final" and [r["type"] for r in records].count("final") == 1
    assert (out / ".lock").read_text() == ""  # released cleanly
