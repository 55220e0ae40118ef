"""What the suites share: repository paths, running a command as a user would, the one-line error check."""
import importlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nas.runtime.cli import run_main
from nas.runtime.paths import REFERENCE_DIR

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
DATA = TESTS / "data"
REFERENCE = REFERENCE_DIR  # the reference zoo as the package ships it (search_spaces/reference links there)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m <args>` as a user would, capturing output."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout)


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2, exactly one line on stderr naming what is at fault, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def run_inprocess(argv: list[str], capsys) -> tuple[int, str, str]:
    """`python -m argv[0] argv[1:]` in this process (no torch import per case): exit status, stdout, stderr.

    Error paths are tested this way; one real subprocess per command covers the entry point itself."""
    name = argv[0] if argv[0] == "nas.inspect" else argv[0] + ".__main__"  # the others are packages
    module = importlib.import_module(name)
    capsys.readouterr()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_main(module.main, argv[1:])
    finally:  # run_main ignores Ctrl-C once a command is over; this process is pytest
        for s, handler in handlers.items():
            signal.signal(s, handler)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def check_user_error(code, err, *needles):
    """assert_user_error for run_inprocess results."""
    assert code == 2, (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
