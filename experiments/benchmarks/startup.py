"""Start-up cost of each command (`--help`) and of `import nas`, and which heavy libraries each loads.

    python experiments/benchmarks/startup.py [--rounds 7] [--base REV]

Each probe is a fresh `python` process, timed wall-clock. With --base, the same probes run on
REV's source (a `git archive` of it in a temporary folder, on PYTHONPATH) interleaved with this
checkout's, round by round, so that the two columns share the machine's noise. Prints a Markdown
table: the median and the p10-p90 spread of each, the ratio of medians, and the heavy libraries
(torch, ray, onnxruntime, scipy) in sys.modules at exit.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ray", "onnxruntime", "scipy")
PROBES = {
    "import nas": "import nas",
    **{f"nas.{c} --help": f"nas.{c}" for c in ("search", "train", "netadapt", "proxies", "supernet", "latency",
                                                 "export", "inspect")},
}
# Runs the command's main as `python -m` would, then names the heavy libraries it loaded.
SCRIPT = """
import runpy, sys
target = sys.argv[1]
if target == "import nas":
    import nas
else:
    sys.argv = [target, "--help"]
    try:
        runpy.run_module(target if target == "nas.inspect" else target + ".__main__", run_name="__main__")
    except SystemExit:
        pass
print("HEAVY:" + ",".join(m for m in {heavy} if m in sys.modules))
""".replace("{heavy}", repr(HEAVY))


def probe(source: Path, target: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(source), "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", SCRIPT, target], env=env, capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir())
    seconds = time.perf_counter() - t0
    return seconds, next(line for line in out.stdout.splitlines() if line.startswith("HEAVY:"))[len("HEAVY:"):]


def checkout(rev: str, into: Path) -> Path:
    archive = into / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "nas"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--base", help="a git revision to compare with, probe by probe")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"this": ROOT}
        if args.base:
            sources = {args.base: checkout(args.base, Path(tmp)), "this": ROOT}
        times = {(s, t): [] for s in sources for t in PROBES}
        loads = {}
        for _ in range(args.rounds):  # interleaved: every probe of every source once per round
            for label, target in PROBES.items():
                for name, source in sources.items():
                    seconds, loaded = probe(source, target)
                    times[(name, label)].append(seconds)
                    loads[(name, label)] = loaded or "none"
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.rounds} rounds; wall seconds, median (p10-p90)\n")
    head = [f"{s}" for s in sources]
    print("| probe | " + " | ".join(f"{h} | loads ({h})" for h in head) + (" | ratio |" if args.base else " |"))
    print("| --- " * (1 + 2 * len(sources) + bool(args.base)) + "|")
    for label, target in PROBES.items():
        cells, medians = [], []
        for name in sources:
            xs = times[(name, label)]
            med = statistics.median(xs)
            medians.append(med)
            cells += [f"{med:.2f} ({np.percentile(xs, 10):.2f}-{np.percentile(xs, 90):.2f})", loads[(name, label)]]
        ratio = [f"{medians[-1] / medians[0]:.2f}"] if args.base else []
        print(f"| `{label}` | " + " | ".join(cells + ratio) + " |")


if __name__ == "__main__":
    main()
