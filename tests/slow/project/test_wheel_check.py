"""The wheel in a fresh venv used from outside the checkout, by the same script CI runs after `make test`."""
from __future__ import annotations

import os
import subprocess

from helpers import ROOT


def test_wheel_in_a_fresh_venv(tmp_path):
    """`make wheel-check` (.ci/wheel_check.sh with the Makefile's torch pin): CI runs it itself after
    `make test`, so it is in tests/slow (not run twice)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "wheel-check"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1].endswith("ok")
