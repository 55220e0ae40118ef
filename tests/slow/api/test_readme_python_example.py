"""The README's Python example, run as a user would: the whole smoke pipeline with its baselines and
deployment (slow; the Python door's other checks are in tests/integration/api/)."""
from __future__ import annotations

import re
import subprocess
import sys

from helpers import ROOT


def test_the_readmes_python_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert "nas.search(" in code
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ms" in proc.stdout and list((tmp_path / "runs").glob("*/summary.json"))
