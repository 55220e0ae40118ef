"""A family from one training: `python -m nas.search --target-ms 15,25,35,50 --proxy supernet`, its
wall time, each target against its predicted latency, and each final network against the
width-scaled MobileNetV3 at equal latency.

    .venv/bin/python experiments/benchmarks/family_run.py [--targets 15,25,35,50] [--budget default]
        [--samples 300] [--proxy supernet] [--cpus N] [--run experiments/runs/family]
        [--out experiments/benchmarks/results/family_run.txt]

An interrupted benchmark resumes its run (`--resume`); the wall time reported is the run's own
(pipeline.json and family.json add up the time of every attempt). Everything is read back from the
run directory: the family's summary.json, family.json (the supernets' and members' seconds) and each
member's pipeline.json (its stages' seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("search", "select", "netadapt", "export", "compare", "deploy", "report")


def run(args) -> dict:
    out = Path(args.run)
    if not (out / "summary.json").exists() or not (out / "family.json").exists():
        cmd = ["--resume", "--out", str(out)] if (out / "config.yaml").exists() else [
            "--target-ms", args.targets, "--budget", args.budget, "--proxy", args.proxy, "--out", str(out)]
        cmd += (["--samples", str(args.samples)] if args.samples and not (out / "config.yaml").exists() else [])
        cmd += ["--cpus", str(args.cpus)] if args.cpus else []
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "nas.search", *cmd, "--quiet"], cwd=ROOT, env=env)
        if proc.returncode != 0:
            sys.exit(f"{out}: nas.search exited {proc.returncode}; run this benchmark again to resume it")
        print(f"{out}: {time.perf_counter() - started:.0f} s this invocation", file=sys.stderr)
    return json.loads((out / "summary.json").read_text())


def member_stage(m: dict) -> str:
    return f"{m['target_ms']:g}ms"


def table(args, summary: dict) -> str:
    out = Path(args.run)
    state = json.loads((out / "family.json").read_text())
    lines = [f".venv/bin/python experiments/benchmarks/family_run.py --targets {args.targets} --budget {args.budget} "
             f"--samples {args.samples} --proxy {args.proxy}" + (f" --cpus {args.cpus}" if args.cpus else ""),
             f"family of {len(summary['targets'])} targets on {summary['device']}, budget {summary['budget']}: "
             f"wall {summary['wall_s']:.0f} s ({summary['wall_s'] / 60:.1f} min)", "",
             "| target ms | space | predicted ms | vs target | final top-1 (mean ± sd) | width-scaled ms | "
             "width-scaled top-1 | final − width-scaled, points [95% CI] | judgement | member s |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for m in summary["family"]:
        final = m["comparison"][0]
        scaled = next((r for r in m["comparison"] if r["kind"] == "width_scaled"), None)
        d = (scaled or {}).get("difference") or {}
        diff = (f"{100 * d['mean']:+.2f} [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}]"
                if d.get("ci_low") is not None else "–")
        lines.append(
            f"| {m['target_ms']:g} | {m['space']} | {m['predicted_ms']:.2f} | "
            f"{100 * (m['predicted_ms'] / m['target_ms'] - 1):+.1f}% | {final['accuracy_mean']:.4f} ± "
            f"{final['accuracy_sd']:.4f} ({final['seeds']}) | " +
            (f"{scaled['latency_ms']:.2f} | {scaled['accuracy_mean']:.4f} ± {scaled['accuracy_sd']:.4f} | {diff} | "
             f"{scaled['judgement']} |" if scaled else "– | – | – | – |") +
            f" {state['done'][member_stage(m)]['seconds']:.0f} |")
    lines += ["", "| stage | " + " | ".join(f"{m['target_ms']:g} ms" for m in summary["family"]) + " |",
              "| --- |" + " ---: |" * len(summary["family"])]
    members = [json.loads((Path(m["run_dir"]) / "pipeline.json").read_text())["done"] for m in summary["family"]]
    for stage in STAGES:
        lines.append(f"| {stage} | " + " | ".join(f"{d.get(stage, {}).get('seconds', 0):.0f}" for d in members) + " |")
    lines += ["", "| supernet | targets | epochs | images | largest / smallest top-1 | seconds |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {s['space']} | {', '.join(f'{t:g}' for t in s['targets'])} | {s['epochs']} | {s['train_images']} | "
              f"{s['largest_accuracy']:.3f} / {s['smallest_accuracy']:.3f} | {s['seconds']:.0f} |"
              for s in summary["supernets"]]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--targets", default="15,25,35,50")
    p.add_argument("--budget", default="default", choices=["smoke", "default", "paper"])
    p.add_argument("--samples", type=int, default=300, help="samples per target (supernet scores cost ~0.6 s each)")
    p.add_argument("--proxy", default="supernet")
    p.add_argument("--cpus", type=int)
    p.add_argument("--run", default=str(ROOT / "experiments" / "runs" / "family"))
    p.add_argument("--out", help="also write the table to this file")
    args = p.parse_args()
    text = table(args, run(args))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
