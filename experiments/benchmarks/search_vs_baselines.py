"""Does the search beat the obvious alternative at equal latency? The pipeline's final network
(controller), random search's final network at the same budget, and the width-scaled
MobileNetV3, each trained with the final recipe at the budget's training seeds.

    .venv/bin/python experiments/benchmarks/search_vs_baselines.py [--targets small:15.8,large:51]
        [--search-seeds 3] [--budget default] [--device pixel1] [--cpus N] [--out experiments/runs/search_vs_baselines]
        [--arms controller,random[,supernet][,tunas]] [--supernet-samples 300]

For every target and search seed s it runs `python -m nas.search --seed s` once per arm: the
controller, `--algorithm random`, the supernet, the joint search (an interrupted benchmark resumes
each run with `--resume`; finished runs are reused). The first arm's compare stage trains its final network and
the width-scaled MobileNetV3 (`--baselines width_scaled`), the other arms' their final network
alone (`--baselines none`: the same baseline twice would be wasted), each at training seeds
s .. s+k-1, so the networks of one search seed share their training seeds. The k training seeds
are averaged per search seed; differences are then paired across search seeds (n = search seeds,
Student's t), which counts the search's own randomness as noise, not only the training's.

The `supernet` arm is the controller scoring with the run's own weight-sharing supernet (`--proxy
supernet`, trained at the search seed), the `tunas` arm TuNAS's joint search (`--algorithm tunas`:
the controller learns while the supernet trains, then goes on with the trained one), both at
`--supernet-samples` samples.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nas.runtime.stats import paired_difference, verdict  # noqa: E402

ARMS = ("controller", "random", "supernet", "tunas", "guided-evolution")


def run_pipeline(out: Path, target: float, space: str, seed: int, arm: str, budget: str, device: str,
                 cpus: int | None, baselines: str, supernet_samples: int = 300, lean: bool = False) -> dict:
    """One arm's run: controller or random search on the budget's proxy; or, at `supernet_samples`
    samples (a score costs ~0.4-2 s), the controller scoring with the run's own supernet (`supernet`)
    or TuNAS's joint search, the controller trained with the supernet's weights (`tunas`)."""
    summary = out / "summary.json"
    algorithm = "controller" if arm == "supernet" else arm
    extra = ["--proxy", "supernet", "--samples", str(supernet_samples)] if arm in ("supernet", "tunas") else []
    if not summary.exists():
        args = ["--resume", "--out", str(out)] if (out / "config.yaml").exists() else [
            "--target-ms", f"{target:g}", "--space", space, "--seed", str(seed), "--algorithm", algorithm,
            "--budget", budget, "--device", device, "--baselines", baselines, "--out", str(out), *extra,
            *(["--deploy", "none"] if lean else [])]
        args += ["--cpus", str(cpus)] if cpus else []
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "nas.search", *args, "--quiet"], cwd=ROOT)
        if proc.returncode != 0:
            sys.exit(f"{out}: nas.search exited {proc.returncode}; run this benchmark again to resume it")
        print(f"{out.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return json.loads(summary.read_text())


def row_of(summary: dict, kind: str) -> dict:
    return next(r for r in summary["comparison"] if r["kind"] == kind)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--targets", default="small:15.8,large:51", help="family:ms pairs")
    p.add_argument("--search-seeds", type=int, default=3)
    p.add_argument("--budget", default="default")
    p.add_argument("--arms", default="controller,random",
                   help="searches beside the width-scaled baseline: controller, random, guided-evolution, supernet (the controller "
                        "scoring with the run's own supernet), tunas (the joint search); the first one's runs "
                        "train the baseline")
    p.add_argument("--supernet-samples", type=int, default=300, help="samples of the supernet and tunas arms")
    p.add_argument("--device", default="pixel1")
    p.add_argument("--lean", action="store_true", help="the arms alone: no width-scaled baseline, no deploy stage")
    p.add_argument("--cpus", type=int, help="CPUs each run may use (default: all; a resumed run may change it)")
    p.add_argument("--out", default=str(ROOT / "experiments/runs/search_vs_baselines"))
    args = p.parse_args()
    started = time.perf_counter()
    tables = []
    for item in args.targets.split(","):
        family, ms = item.split(":")
        target, space = float(ms), f"mobilenetv3_{family}"
        arms = args.arms.split(",")
        if not arms or any(a not in ARMS for a in arms) or len(set(arms)) < len(arms):
            sys.exit(f"--arms: distinct names out of {', '.join(ARMS)}, got {args.arms!r}")
        per_seed: dict[str, list[float]] = {a: [] for a in [*arms, *([] if args.lean else ["width_scaled"])]}
        latency: dict[str, list[float]] = {k: [] for k in per_seed}
        wall: dict[str, list[float]] = {k: [] for k in arms}
        for seed in range(args.search_seeds):
            runs = {a: run_pipeline(Path(args.out) / f"{family}-{ms}ms" / f"{a}-seed{seed}", target, space, seed, a,
                                    args.budget, args.device, args.cpus,
                                    "width_scaled" if a == arms[0] and not args.lean else "none",
                                    args.supernet_samples, args.lean) for a in arms}
            for name, summary, kind in [*((a, runs[a], "final") for a in arms),
                                        *([] if args.lean else [("width_scaled", runs[arms[0]], "width_scaled")])]:
                row = row_of(summary, kind)
                per_seed[name].append(row["accuracy_mean"])
                latency[name].append(row["latency_ms"])
            for a in arms:
                wall[a].append(runs[a]["wall_s"])
        tables.append((family, target, per_seed, latency, wall))

    print(f"search vs baselines on {args.device}, budget {args.budget}, {args.search_seeds} search seeds; each "
          f"network trained with the final recipe, training seeds averaged per search seed")
    for family, target, per_seed, latency, wall in tables:
        print(f"\n### MobileNetV3-{family.capitalize()} family at {target:g} ms\n")
        print("| network | predicted ms (mean) | top-1 mean ± sd over search seeds | per search seed | run wall s (median) |")
        print("| --- | ---: | ---: | --- | ---: |")
        for name, acc in per_seed.items():
            sd = statistics.stdev(acc) if len(acc) > 1 else float("nan")
            w = f"{statistics.median(wall[name]):.0f}" if name in wall else "–"
            print(f"| {name} | {statistics.fmean(latency[name]):.2f} | {statistics.fmean(acc):.4f} ± {sd:.4f} | "
                  f"{', '.join(f'{a:.4f}' for a in acc)} | {w} |")
        print()
        arms = [a for a in per_seed if a != "width_scaled"]
        pairs = [(a, "width_scaled") for a in arms if "width_scaled" in per_seed]
        pairs += [(a, b) for i, a in enumerate(arms) for b in arms[i + 1:]]
        for a, b in pairs:
            d = paired_difference(per_seed[a], per_seed[b])
            print(f"- {verdict(a, b, d, target)}")
    print(f"\n({time.perf_counter() - started:.0f} s this invocation; runs in {args.out})")


if __name__ == "__main__":
    main()
