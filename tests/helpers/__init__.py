"""What the suites share: repository paths, running a command as a user would, the one-line error check."""
import subprocess
import sys
from pathlib import Path

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
