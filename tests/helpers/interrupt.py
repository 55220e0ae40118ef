"""Interrupt a command at a chosen moment and check that what it left behind is whole.

Used by test_interruption.py (one seeded moment per case, in CI) and by
experiments/benchmarks/interruption_audit.py (many random moments, a table of outcomes).
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}


@dataclass
class Outcome:
    signal: str           # SIGINT, SIGKILL, or "none" (the run was left to finish)
    delay_s: float        # seconds after `ready` that the signal was sent
    hit: bool             # the process was still running when signalled
    returncode: int
    stderr: str
    seconds: float        # wall time of this attempt
    cpu_s: float          # CPU time (user + system) it and its children used

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.replace("\r", "\n").splitlines() if line.strip()]
        return lines[-1] if lines else ""


def run_until(cmd: Sequence[str], sig: signal.Signals | None, delay_s: float,
              ready: Callable[[], bool] = lambda: True, timeout: float = 600, env: dict | None = None,
              module: bool = True) -> Outcome:
    """Start `python -m cmd...` (`python cmd...` unless `module`); once `ready()` holds, wait `delay_s`
    and send `sig` (None: let it finish)."""
    start = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # A background job starts with SIGINT ignored, and Python then installs no Ctrl-C handler:
    # give the command the disposition a terminal gives it.
    proc = subprocess.Popen([sys.executable, *(["-m"] if module else []), *cmd], cwd=ROOT, env=env or ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    hit = False
    if sig is not None:
        while not ready() and proc.poll() is None and time.monotonic() - start < timeout:
            time.sleep(0.02)
        fire_at = time.monotonic() + delay_s
        while proc.poll() is None and time.monotonic() < fire_at:
            time.sleep(0.01)
        if proc.poll() is None:
            hit = True
            proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Outcome(sig.name if sig is not None else "none", delay_s, hit, proc.returncode, err,
                   time.monotonic() - start, cpu)


def broken_files(folder: Path, finished: bool) -> list[str]:
    """Every file under `folder` that is not whole. A killed run may leave one torn last line in an
    append-only log (its reader drops it); a finished run may not, and leaves no temporary files."""
    import onnx
    import torch
    import yaml

    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if path.name.startswith("search_gen_state-"):
            continue  # Ray Tune's own searcher state: a pickle, whatever its .json suffix says
        if ".tmp" in path.name:
            if finished:
                problems.append(f"{name}: temporary file left behind")
            continue  # a SIGKILL between write and rename leaves one; the next write replaces it
        try:
            if path.suffix in (".yaml", ".yml"):
                if yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) is None:
                    problems.append(f"{name}: empty")
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".jsonl":
                lines = path.read_text().split("\n")
                whole, tail = lines[:-1], lines[-1]
                for i, line in enumerate(whole):
                    if line.strip():
                        json.loads(line)
                if tail.strip() and finished:
                    problems.append(f"{name}: torn last line after a finished run")
            elif path.suffix == ".onnx":
                onnx.checker.check_model(onnx.load(str(path)))
            elif path.suffix == ".pt":
                torch.load(path, map_location="cpu", weights_only=True)
            elif path.suffix == ".png":
                data = path.read_bytes()
                if not (data.startswith(b"\x89PNG") and data.rstrip().endswith(b"IEND\xaeB`\x82")):
                    problems.append(f"{name}: not a whole PNG")
        except Exception as err:  # noqa: BLE001 - any failure to read is the finding
            problems.append(f"{name}: {type(err).__name__}: {str(err)[:120]}")
    return problems
