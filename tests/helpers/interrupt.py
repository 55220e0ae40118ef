"""Interrupt a command at a chosen state and check that what it left behind is whole.

Used by tests/integration/project/test_interruption.py and test_family.py (signals sent when a state is
observed: a log line, a file) and by
experiments/benchmarks/interruption_audit.py (many random moments and simulated power cuts, a table
of outcomes).
"""
from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

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
    probed: Any = None    # what `probe(pid)` returned just before the signal
    left_running: list[str] = field(default_factory=list)  # its processes still alive after it exited

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.replace("\r", "\n").splitlines() if line.strip()]
        return lines[-1] if lines else ""


def lines_in(path: Path) -> int:
    """Whole lines in a log so far (0 while it does not exist)."""
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def process_tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def tree_cpus(pid: int) -> set[int]:
    """Every CPU that `pid` or one of its descendants may run on: what bounds the CPU time it takes."""
    cpus: set[int] = set()
    for p in process_tree(pid):
        try:
            cpus |= os.sched_getaffinity(p)
        except OSError:  # exited meanwhile
            pass
    return cpus


def _session_processes(sid: int) -> list[str]:
    """'pid command' of every live (not zombie) process in session `sid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
            except OSError:
                continue
            fields = rest.split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(f"{entry} {head.split('(', 1)[1]}")
    return found


def run_until(cmd: Sequence[str], sig: signal.Signals | None, delay_s: float = 0.0,
              ready: Callable[[], bool] = lambda: True, timeout: float = 600, env: dict | None = None,
              module: bool = True, probe: Callable[[int], Any] | None = None, settle_s: float = 60) -> Outcome:
    """Start `python -m cmd...` (`python cmd...` unless `module`); once `ready()` holds (a state the
    tests observe: a log line, a file), wait `delay_s` (the audit's random moments; tests use 0),
    call `probe(pid)` and send `sig` (None: let it finish). The command runs in a session of its own:
    `left_running` lists its processes still alive `settle_s` after it exited."""
    start = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # A background job starts with SIGINT ignored, and Python then installs no Ctrl-C handler:
    # give the command the disposition a terminal gives it.
    # stderr goes to a file, not a pipe: a process left behind holding it must not stall the wait.
    err_file = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
    proc = subprocess.Popen([sys.executable, *(["-m"] if module else []), *cmd], cwd=ROOT, env=env or ENV,
                            stdout=subprocess.DEVNULL, stderr=err_file, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    hit, probed = False, None
    if sig is not None:
        while not ready() and proc.poll() is None and time.monotonic() - start < timeout:
            time.sleep(0.02)
        fire_at = time.monotonic() + delay_s
        while proc.poll() is None and time.monotonic() < fire_at:
            time.sleep(0.01)
        if proc.poll() is None:
            hit = True
            probed = probe(proc.pid) if probe is not None else None
            proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with err_file:
        err_file.seek(0)
        err = err_file.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    seconds = time.monotonic() - start
    settle = time.monotonic() + settle_s
    while (left := _session_processes(proc.pid)) and time.monotonic() < settle:
        time.sleep(0.1)  # a worker may take a moment to see that its parent has gone
    for line in left:  # never leave them to the next test
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    return Outcome(sig.name if sig is not None else "none", delay_s, hit, proc.returncode, err, seconds, cpu,
                   probed, left)


# A power cut, simulated without a hook in the package: `python -c POWER_CUT N[:NAME] FOLDER SNAPSHOT TALLY
# module args...` runs `python -m module args...` under an audit hook (sys.addaudithook) that counts the
# renames (os.rename, os.replace) into or out of FOLDER (with NAME: only those onto a file of that
# name). After the Nth, at the next change to FOLDER
# (a file opened for writing, a rename, a removal, a link, a new folder) or at exit, whichever comes
# first, it copies FOLDER to SNAPSHOT as it is and dies at once (os._exit(137)): the disk as a power
# cut leaves it when everything before the rename was durable and nothing after it reached the disk.
# N = 0 never cuts. TALLY receives the number of renames seen (at exit, or at the cut). Only the
# command's own process is watched: files its child processes write are not counted.
POWER_CUT = r"""
import atexit, os, runpy, shutil, sys
cut_after, _, only = sys.argv[1].partition(":")
cut_after, folder, snapshot, tally = int(cut_after), os.path.abspath(sys.argv[2]), sys.argv[3], sys.argv[4]
module, sys.argv = sys.argv[5], [sys.argv[5], *sys.argv[6:]]
state = {"renames": 0, "armed": False, "busy": False}
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGES = {"os.remove": 0, "os.rmdir": 0, "os.mkdir": 0, "os.link": 1, "os.symlink": 1, "os.truncate": 0,
           "shutil.rmtree": 0}


def inside(path):
    if isinstance(path, int) or path is None:
        return False  # a descriptor: it was opened, and counted, by path
    p = os.path.abspath(os.fsdecode(path))
    return p == folder or p.startswith(folder + os.sep)


def save_tally():
    with open(tally, "w") as f:
        f.write(str(state["renames"]))


def cut():
    state["busy"] = True
    shutil.copytree(folder, snapshot, symlinks=True)
    save_tally()
    os._exit(137)


def hook(event, args):
    if state["busy"]:
        return
    if event in ("os.rename", "os.replace"):
        if inside(args[0]) or inside(args[1]):
            if state["armed"]:
                cut()
            if not only or os.path.basename(os.fsdecode(args[1])) == only:
                state["renames"] += 1
                state["armed"] = state["renames"] == cut_after
    elif state["armed"]:
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITES)
            if writes and inside(path):
                cut()
        elif event in CHANGES and inside(args[CHANGES[event]]):
            cut()


def at_exit():
    if state["armed"]:
        cut()  # the Nth rename was the last change: the cut comes as the command ends
    save_tally()


atexit.register(at_exit)
sys.addaudithook(hook)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def power_cut(cmd: Sequence[str], folder: Path, cut_after: int, snapshot: Path, timeout: float = 600,
              only: str = "") -> tuple[Outcome, int]:
    """Run `python -m cmd...` and cut its power after the `cut_after`-th rename in `folder` (0: never;
    with `only`, the `cut_after`-th onto a file so named); (the outcome, the renames it counted). A cut
    leaves `snapshot`, the folder's copy at that moment."""
    with tempfile.TemporaryDirectory(prefix="nas-power-") as tmp:
        tally = Path(tmp) / "renames"
        got = run_until(["-c", POWER_CUT, f"{cut_after}:{only}", str(folder), str(snapshot), str(tally), *cmd],
                        None, timeout=timeout, module=False)
        renames = int(tally.read_text()) if tally.exists() else -1
    return got, renames


# What Ray Tune writes itself in an experiment and its trial folders (the project's own files there,
# the checkpoints' trainer.pt, are checked like any other).
RAY_TUNE_FILES = {"result.json", "params.json", "params.pkl", "progress.csv", "tuner.pkl", "trainable.pkl",
                  "error.txt", "error.pkl"}
RAY_TUNE_PREFIXES = ("experiment_state-", "basic-variant-state-", "search_gen_state-", "events.out.tfevents")


def broken_files(folder: Path, finished: bool) -> list[str]:
    """Every file under `folder` that is not whole. A killed run may leave one torn last line in an
    append-only log (its reader drops it); a finished run may not, and leaves no temporary files."""
    import onnx
    import torch
    import yaml

    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if path.name in RAY_TUNE_FILES or path.name.startswith(RAY_TUNE_PREFIXES):
            continue  # Ray Tune's own, written in place: a SIGINT may catch one half-written
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


def resume_hint(outcome) -> list[str]:
    """The command the SIGINT message gives, as argv for `python -m`."""
    line = outcome.last_line
    assert outcome.returncode == 130 and "interrupted; continue with: python -m " in line, outcome.stderr[-2000:]
    assert "Traceback" not in outcome.stderr
    command = line.split("continue with: ", 1)[1].split("  (")[0]
    return shlex.split(command)[2:]


def interrupt_twice_then_finish(cmd, out, sigint_when, sigkill_when, timeout=600, env=None, probe=None):
    """SIGINT once `sigint_when()` holds, SIGKILL of the resumed run once `sigkill_when()` does, then
    the resumed run to the end; returns the three outcomes."""
    first = run_until(cmd, signal.SIGINT, 0, sigint_when, timeout, env)
    assert first.hit, "finished before the SIGINT"
    assert (broken := broken_files(out, finished=False)) == [], broken  # helpers: no assert rewriting
    assert first.left_running == []
    again = resume_hint(first)
    second = run_until(again, signal.SIGKILL, 0, sigkill_when, timeout=timeout, env=env, probe=probe)
    assert second.hit and second.returncode == -signal.SIGKILL, second.stderr[-2000:]
    assert (broken := broken_files(out, finished=False)) == [], broken  # helpers: no assert rewriting
    assert second.left_running == []
    last = run_until(again, None, timeout=timeout, env=env)
    assert last.returncode == 0, last.stderr[-3000:]
    assert (broken := broken_files(out, finished=True)) == [], broken  # helpers: no assert rewriting
    assert last.left_running == []
    return first, second, last
