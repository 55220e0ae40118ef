"""Does the search beat the obvious alternative at equal latency? The pipeline's final network
(controller), random search's final network at the same budget, and the width-scaled
MobileNetV3, each trained with the final recipe at the budget's training seeds.

    .venv/bin/python experiments/benchmarks/search_vs_baselines.py [--targets small:15.8,large:51]
        [--search-seeds 3] [--budget default] [--device pixel1] [--cpus N] [--out experiments/runs/search_vs_baselines]

For every target and search seed s it runs `python -m nas.search --seed s` once with the
controller and once with `--algorithm random` (an interrupted benchmark resumes each run with
`--resume`; finished runs are reused). The controller run's compare stage trains its final network
and the width-scaled MobileNetV3 (`--baselines width_scaled`), the random run's its final network
alone (`--baselines none`: the same baseline twice would be wasted), each at training seeds
s .. s+k-1, so the networks of one search seed share their training seeds. The k training seeds are averaged per search seed; differences are
then paired across search seeds (n = search seeds, Student's t), which counts the search's own
randomness as noise, not only the training's.
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

from nas.accuracy.stats import paired_difference, verdict  # noqa: E402


BASELINES = {"controller": "width_scaled", "random": "none"}


def run_pipeline(out: Path, target: float, space: str, seed: int, algorithm: str, budget: str, device: str,
                 cpus: int | None) -> dict:
    summary = out / "summary.json"
    if not summary.exists():
        args = ["--resume", "--out", str(out)] if (out / "config.yaml").exists() else [
            "--target-ms", f"{target:g}", "--space", space, "--seed", str(seed), "--algorithm", algorithm,
            "--budget", budget, "--device", device, "--baselines", BASELINES[algorithm], "--out", str(out)]
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
    p.add_argument("--device", default="pixel1")
    p.add_argument("--cpus", type=int, help="CPUs each run may use (default: all; a resumed run may change it)")
    p.add_argument("--out", default=str(ROOT / "experiments/runs/search_vs_baselines"))
    args = p.parse_args()
    started = time.perf_counter()
    tables = []
    for item in args.targets.split(","):
        family, ms = item.split(":")
        target, space = float(ms), f"mobilenetv3_{family}"
        per_seed: dict[str, list[float]] = {"controller": [], "random": [], "width_scaled": []}
        latency: dict[str, list[float]] = {k: [] for k in per_seed}
        for seed in range(args.search_seeds):
            runs = {a: run_pipeline(Path(args.out) / f"{family}-{ms}ms" / f"{a}-seed{seed}", target, space, seed, a,
                                    args.budget, args.device, args.cpus) for a in ("controller", "random")}
            for name, summary, kind in (("controller", runs["controller"], "final"),
                                        ("random", runs["random"], "final"),
                                        ("width_scaled", runs["controller"], "width_scaled")):
                row = row_of(summary, kind)
                per_seed[name].append(row["accuracy_mean"])
                latency[name].append(row["latency_ms"])
        tables.append((family, target, per_seed, latency))

    print(f"search vs baselines on {args.device}, budget {args.budget}, {args.search_seeds} search seeds; each "
          f"network trained with the final recipe, training seeds averaged per search seed")
    for family, target, per_seed, latency in tables:
        print(f"\n### MobileNetV3-{family.capitalize()} family at {target:g} ms\n")
        print("| network | predicted ms (mean) | top-1 mean ± sd over search seeds | per search seed |")
        print("| --- | ---: | ---: | --- |")
        for name, acc in per_seed.items():
            sd = statistics.stdev(acc) if len(acc) > 1 else float("nan")
            print(f"| {name} | {statistics.fmean(latency[name]):.2f} | {statistics.fmean(acc):.4f} ± {sd:.4f} | "
                  f"{', '.join(f'{a:.4f}' for a in acc)} |")
        print()
        for a, b in (("controller", "width_scaled"), ("random", "width_scaled"), ("controller", "random")):
            d = paired_difference(per_seed[a], per_seed[b])
            print(f"- {verdict(a, b, d, target)}")
    print(f"\n({time.perf_counter() - started:.0f} s this invocation; runs in {args.out})")


if __name__ == "__main__":
    main()
