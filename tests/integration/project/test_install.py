"""The package as installed: console scripts in this venv (the wheel in a fresh venv, slow, is in
tests/slow/project/test_wheel_check.py)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import assert_user_error, check_user_error, run_inprocess

BIN = Path(sys.executable).parent


def _script(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} missing: the console scripts come with `make setup` (pip install -e .)"
    return str(path)


def _run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_console_script_finds_builtin_data_from_anywhere(tmp_path):
    proc = _run(_script("nas-inspect"), "mobilenetv3_large", "--device", "pixel1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["name"] == "mobilenetv3_large" and result["latency_ms"] > 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, needles", [  # one per console script: the entry point itself
    (["nas-inspect", "mobilenetv9"], ("unknown spec 'mobilenetv9'", "mobilenetv3_small")),
    (["nas-search", "--target-ms", "15", "--space", "tiny9"], ("--space", "unknown search space", "mnasnet")),
    (["nas-netadapt", "--spec", "mnasnet_z9", "--target-ms", "5"], ("unknown spec", "mnasnet_a1")),
    (["nas-latency", "build", "--bogus"], ("--bogus",)),
])
def test_console_script_errors_are_one_line(tmp_path, argv, needles):
    proc = _run(_script(argv[0]), *argv[1:], cwd=tmp_path)
    assert_user_error(proc, *needles)
    assert not (tmp_path / "runs").exists()


def test_builtin_names_are_listed_from_anywhere(tmp_path, monkeypatch, capsys):
    """The built-in devices come from the package, not the working directory (in-process: the
    console script above covers the entry point)."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_inprocess(["nas.inspect", "mobilenetv3_small", "--device", "phone9"], capsys)
    check_user_error(code, err, "unknown device 'phone9'", "pixel1")
    assert list(tmp_path.iterdir()) == []


def test_console_script_ctrl_c_while_starting(tmp_path):
    """Ctrl-C while torch loads: one line and 130, as `python -m nas.search` gives."""
    proc = subprocess.Popen([_script("nas-search"), "--target-ms", "15", "--budget", "smoke"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.5)  # inside the imports (torch alone takes longer)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert [line for line in err.splitlines() if line.strip()] == ["interrupted; nothing was saved"]
    assert not (tmp_path / "runs").exists()
