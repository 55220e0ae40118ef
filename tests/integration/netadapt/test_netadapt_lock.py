"""One process at a time in a NetAdapt run directory: a second one there is refused at once, naming the first."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from helpers import REFERENCE, ROOT, assert_user_error
from helpers.interrupt import ENV, lines_in
from nas.core.spec_file import load_spec
from nas.latency.devices import get_device
from nas.runtime.jsonl import read_jsonl


def test_a_second_process_on_the_run_directory_is_refused(tmp_path, fashion_mnist):
    out = tmp_path / "na"
    spec = REFERENCE / "mobilenetv3_small.yaml"
    # One iteration of one proposal: the first run is cheap; it is held still while the others try.
    target = round(0.9 * get_device("pixel1").predict(load_spec(spec)).ms, 2)
    cmd = [sys.executable, "-m", "nas.netadapt", "--spec", str(spec), "--target-ms", str(target), "--out", str(out),
           "--budget", "smoke", "--steps", "1", "--final-steps", "0", "--delta", "0.1", "--seed-steps", "2",
           "--train-images", "64", "--val-images", "32", "--threads", "1", "--data", str(fashion_mnist)]
    log = out / "netadapt.jsonl"
    with open(tmp_path / "first.err", "w+") as first_err:
        first = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=first_err)
        try:
            deadline = time.monotonic() + 300
            while lines_in(log) < 1 and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)  # the start line is written under the lock: the first run has begun
            # Stopped, the first run holds the lock for as long as the others take, however slow the machine.
            first.send_signal(signal.SIGSTOP)
            assert first.poll() is None, "the first run ended before a second could start"
            before = log.read_bytes()
            for extra in (["--resume"], []):  # continuing it, or starting it again
                # A second that waited for the lock would wait for ever on the stopped first: the timeout.
                second = subprocess.run(cmd + extra, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
                assert_user_error(second, str(out), f"pid {first.pid}", "NetAdapt", "--resume")
            assert log.read_bytes() == before  # the refused ones wrote nothing
            first.send_signal(signal.SIGCONT)
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
