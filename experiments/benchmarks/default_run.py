"""What a whole `python -m nas.search` run costs on this machine: wall time, CPU time, peak memory.

Runs the headline command as a user would (a fresh process per run, a fresh run directory), and
samples the resident memory of its whole process tree (a local Ray's workers included) every
0.2 s from /proc. Prints one row per run and the median of each column.

    .venv/bin/python experiments/benchmarks/default_run.py [--budget default] [--target-ms 50]
        [--repeats 1] [--cpus N] [--out experiments/benchmarks/results/default_run.txt] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root_pid: int) -> int:
    """Resident bytes of `root_pid` and all its descendants (a snapshot of /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * PAGE
        except (OSError, IndexError):
            continue  # the process ended while we looked
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def one_run(args, out: Path) -> dict:
    cmd = [sys.executable, "-m", "nas.search", "--target-ms", str(args.target_ms), "--budget", args.budget,
           "--out", str(out), "--json"] + (["--cpus", str(args.cpus)] if args.cpus else [])
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak_tree = 0
    while proc.poll() is None:
        peak_tree = max(peak_tree, tree_rss(proc.pid))
        time.sleep(0.2)
    stdout = proc.stdout.read()
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"run failed with exit status {proc.returncode}: {' '.join(cmd)}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            # ru_maxrss: the largest single process waited for (kB on Linux); the tree: all of them at once
            "peak_process_mb": after.ru_maxrss / 1024, "peak_tree_mb": peak_tree / 2**20,
            "samples": result["samples"], "predicted_ms": result["predicted_ms"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--budget", default="default", choices=["smoke", "default", "paper"])
    p.add_argument("--target-ms", type=float, default=50.0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--cpus", type=int)
    p.add_argument("--out", help="also write the table to this file")
    p.add_argument("--keep", metavar="DIR", help="keep the run directories under DIR (run0, run1, ...)")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        for i in range(args.repeats):
            rows.append(one_run(args, Path(args.keep or tmp) / f"run{i}"))
    cols = ["wall_s", "cpu_s", "peak_process_mb", "peak_tree_mb", "samples", "predicted_ms"]
    lines = [f"python -m nas.search --target-ms {args.target_ms:g} --budget {args.budget}"
             + (f" --cpus {args.cpus}" if args.cpus else "") + f"  ({os.cpu_count()} CPUs here)",
             "run     " + "".join(f"{c:>17}" for c in cols)]
    for i, r in enumerate(rows):
        lines.append(f"{i:<8}" + "".join(f"{r[c]:>17.1f}" for c in cols))
    if len(rows) > 1:
        lines.append("median  " + "".join(f"{statistics.median(r[c] for r in rows):>17.1f}" for c in cols))
        lines.append("min..max" + "".join(f"{min(r[c] for r in rows):>8.1f}..{max(r[c] for r in rows):<7.1f}"
                                          for c in cols))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
