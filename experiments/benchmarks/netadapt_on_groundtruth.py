"""Does NetAdapt pay on ground truth? The search straight to the target, against the search above the
target and NetAdapt down to it (MobileNetV3's recipe), at equal total accuracy queries.

    .venv/bin/python experiments/benchmarks/netadapt_on_groundtruth.py [--settings all|NAME,...]
        [--arm guided-evolution] [--seeds 10] [--search 1700] [--above 0.15] [--workers 2]
        [--out experiments/runs/netadapt_on_groundtruth]
        [--table experiments/benchmarks/results/netadapt_on_groundtruth.md]

Per setting of `search_on_groundtruth.py` (same spaces, devices, accuracy models and targets) and
seed, with the search arm `--arm`:

- above + NetAdapt: the search runs `--search` queries at the target x (1 + `--above`), then NetAdapt
  on the space's choices (`nas/netadapt/choices.py`; every proposal is one accuracy query) takes
  the best network it found down to the target, once with each selection rule (`ratio`,
  MobileNetV3's accuracy change per ms; `accuracy`, NetAdapt's most accurate proposal);
- straight: the same search at the target, read after exactly as many queries as that arm spent
  (search + NetAdapt), so every comparison is at equal queries; both finals meet the target.

Paired by seed, with 95% t intervals. Runs are kept in `--out/runs/` as they end (resumable).
Accuracies are others' models (OFA's predictor; the surrogate of Accel-NASBench's records).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_on_groundtruth as sog  # noqa: E402 - the settings, arms and search driver are shared

RULES = ("ratio", "accuracy")
SLACK = 600  # the straight run goes this far past --search, so it can be read at search + NetAdapt


def run_pair(setting_name: str, arm: str, seed: int, search: int, above: float) -> dict:
    import torch

    from nas.core.spec import spec_from_string
    from nas.netadapt.choices import adapt_on_choices

    torch.set_num_threads(1)
    setting = sog.SETTINGS[setting_name]
    target = sog.target_of(setting)
    space, device, proxy = sog.parts(setting.space, setting.device, setting.proxy)
    straight = sog.run_one(setting, arm, seed, search + SLACK, target)
    high = sog.run_one(setting, arm, seed, search, target * (1 + above))
    start = spec_from_string(high["best_arch"])
    adapted = {}
    for rule in RULES:
        r = adapt_on_choices(start, space, device, proxy, target, rule=rule)
        adapted[rule] = {"accuracy": r["accuracy"], "latency_ms": r["latency_ms"], "queries": r["queries"],
                         "iterations": r["iterations"], "met": r["met"]}
    return {"setting": setting_name, "arm": arm, "seed": seed, "target": target, "above": above, "search": search,
            "start_accuracy": max(a for a, ms in zip(high["accuracy"], high["latency"]) if ms <= target * (1 + above)),
            "straight_latency": straight["latency"], "straight_accuracy": straight["accuracy"], "netadapt": adapted}


def _job(args) -> str:
    setting_name, arm, seed, search, above, path = args
    t0 = time.perf_counter()
    result = run_pair(setting_name, arm, seed, search, above)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)
    return f"{setting_name} seed {seed}: {time.perf_counter() - t0:.1f} s"


def straight_at(run: dict, queries: int) -> tuple[float, float]:
    """The straight search's best accuracy meeting the target after `queries`, and that network's latency."""
    lat = np.asarray(run["straight_latency"][:queries])
    acc = np.asarray(run["straight_accuracy"][:queries])
    ok = np.flatnonzero(lat <= run["target"])
    k = ok[np.argmax(acc[ok])]
    return float(acc[k]), float(lat[k])


def table(runs: list[dict]) -> str:
    from nas.runtime.stats import paired_difference

    lines = ["Accuracies are predicted ImageNet top-1 (OFA's accuracy predictor; the surrogate of Accel-NASBench's "
             "records), in %, mean ± sd over seeds. queries: search + NetAdapt (mean); the straight search is read "
             "after exactly as many. Δ: NetAdapt's final − the straight search's best, paired by seed, 95% t "
             "interval, points. Every final network meets the target.", "",
             "| setting | target ms | rule | queries | above: searched best (over target) | above + NetAdapt % "
             "| ms | straight % | ms | Δ points [95% CI] |", "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: "
             "| ---: | ---: |"]
    for setting in dict.fromkeys(r["setting"] for r in runs):
        mine = sorted((r for r in runs if r["setting"] == setting), key=lambda r: r["seed"])
        for rule in RULES:
            q = [r["search"] + r["netadapt"][rule]["queries"] for r in mine]
            na = [r["netadapt"][rule]["accuracy"] for r in mine]
            na_ms = [r["netadapt"][rule]["latency_ms"] for r in mine]
            st = [straight_at(r, n) for r, n in zip(mine, q)]
            d = paired_difference(na, [a for a, _ in st])
            lines.append(
                f"| {setting} | {mine[0]['target']:g} | {rule} | {np.mean(q):,.0f} | "
                f"{100 * np.mean([r['start_accuracy'] for r in mine]):.2f} | "
                f"{100 * np.mean(na):.2f} ± {100 * np.std(na, ddof=1):.2f} | {np.mean(na_ms):.2f} | "
                f"{100 * np.mean([a for a, _ in st]):.2f} ± {100 * np.std([a for a, _ in st], ddof=1):.2f} | "
                f"{np.mean([m for _, m in st]):.2f} | "
                f"{100 * d['mean']:+.2f} [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}] |")
    lines += ["", "NetAdapt's selection rules, paired by seed on the same searched network (points, 95% t interval):",
              "", "| setting | ratio % | accuracy % | ratio − accuracy |", "| --- | ---: | ---: | ---: |"]
    for setting in dict.fromkeys(r["setting"] for r in runs):
        mine = sorted((r for r in runs if r["setting"] == setting), key=lambda r: r["seed"])
        a, b = ([r["netadapt"][rule]["accuracy"] for r in mine] for rule in RULES)
        d = paired_difference(a, b)
        lines.append(f"| {setting} | {100 * np.mean(a):.2f} | {100 * np.mean(b):.2f} | "
                     f"{100 * d['mean']:+.2f} [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}] |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="all")
    ap.add_argument("--arm", default="guided-evolution")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--search", type=int, default=1700, help="queries of the search above the target")
    ap.add_argument("--above", type=float, default=0.15, help="the search's target is the target x (1 + this)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments/runs/netadapt_on_groundtruth")
    ap.add_argument("--table", type=Path, default=ROOT / "experiments/benchmarks/results/netadapt_on_groundtruth.md")
    args = ap.parse_args()
    settings = list(sog.SETTINGS) if args.settings == "all" else args.settings.split(",")
    for name in settings:
        if name not in sog.SETTINGS:
            ap.error(f"--settings: unknown {name!r} (one of {', '.join(sog.SETTINGS)})")
    runs_dir = args.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{sog.safe(args.arm)}.n{args.search}.a{args.above:g}"
    paths = {(name, seed): runs_dir / f"{name}.{tag}.s{seed}.json" for name in settings for seed in range(args.seeds)}
    jobs = [(name, args.arm, seed, args.search, args.above, path) for (name, seed), path in paths.items()
            if not path.exists()]
    started = time.perf_counter()
    if jobs:
        with ProcessPoolExecutor(args.workers) as pool:
            for i, message in enumerate(pool.map(_job, jobs), 1):
                print(f"[{i}/{len(jobs)}] {message}", flush=True)
    runs = [json.loads(p.read_text()) for p in paths.values() if p.exists()]
    text = table(runs)
    command = "python experiments/benchmarks/netadapt_on_groundtruth.py " + " ".join(sys.argv[1:])
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(f"{command}\n\narm: {args.arm}; search above the target: {args.search} queries at "
                          f"target x {1 + args.above:g}\n\n{text}")
    print(text)
    print(f"{len(jobs)} runs in {time.perf_counter() - started:.0f} s; {args.table}")


if __name__ == "__main__":
    main()
