"""What a proxy task closer to deployment buys: the final recipe at a larger input, where the
network keeps its deployed strides, against the default 32x32 input with the stem's stride set to 1.

    .venv/bin/python experiments/benchmarks/input_resolution.py [--inputs 32:auto,64:keep,96:keep]
        [--seeds 2] [--budget default] [--threads 1] [--out experiments/runs/input_resolution]

For each input (resolution:stem-stride, as `--resolution` and `--stem-stride` take them) and each of
MobileNetV3-Small and -Large: the budget's final recipe at `--seeds` seeds (mean, seed-to-seed sd,
seconds per training). At 32x32 with the stem at stride 1 the feature maps from the first block on
are those of a 64x64 input at the deployed stride 2, so the two cost nearly the same; 96x96 keeps the
strides at 2.25x the pixels. What a proxy task must do is tell networks apart: the table gives
Large - Small, paired by seed (mean and 95% t interval), beside the noise. Trainings are appended
to `results.jsonl` in `--out` as they end, so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nas.accuracy.proxy_config import DataConfig, stem_stride_flag  # noqa: E402
from nas.accuracy.proxy_data import load_data  # noqa: E402
from nas.accuracy.short_training import Trainer  # noqa: E402
from nas.budgets import get_budget  # noqa: E402
from nas.core.spec_file import load_spec  # noqa: E402
from nas.runtime.jsonl import JsonlWriter, read_jsonl  # noqa: E402
from nas.runtime.paths import REFERENCE_DIR  # noqa: E402
from nas.runtime.session import set_threads  # noqa: E402
from nas.runtime.stats import mean_sd, paired_difference, seed_summary  # noqa: E402

NETWORKS = ("mobilenetv3_small", "mobilenetv3_large")


def inputs_flag(text: str) -> list[tuple[int, str | int]]:
    pairs = []
    for item in text.split(","):
        resolution, _, stride = item.partition(":")
        pairs.append((int(resolution), stem_stride_flag(stride or "auto")))
    return pairs


def fmt(values: list[float]) -> str:
    return mean_sd(**{k: v for k, v in seed_summary(values).items() if k != "n"}) if values else "–"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--inputs", type=inputs_flag, default=inputs_flag("32:auto,64:keep,96:keep"))
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--budget", default="default")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "experiments/runs/input_resolution"))
    args = p.parse_args()
    set_threads(args.threads)
    recipe = get_budget(args.budget).accuracy.final
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"
    done = {(r["network"], r["resolution"], str(r["stem_stride"]), json.dumps(r["config"], sort_keys=True), r["seed"]): r
            for r in read_jsonl(log)}
    config = json.dumps(asdict(recipe), sort_keys=True)
    writer = JsonlWriter(log)
    started = time.perf_counter()
    try:
        for resolution, stride in args.inputs:
            data = load_data(DataConfig(resolution=resolution, stem_stride=stride), recipe.train_images,
                             recipe.val_images, "cpu")
            for seed in range(args.seeds):  # seed-major: an early stop still leaves pairs
                for network in NETWORKS:
                    key = (network, resolution, str(stride), config, seed)
                    if key in done:
                        continue
                    t0 = time.perf_counter()
                    result = Trainer(load_spec(REFERENCE_DIR / f"{network}.yaml"), data, recipe, seed=seed,
                                     stem_stride=stride).run()
                    row = {"network": network, "resolution": resolution, "stem_stride": stride,
                           "config": asdict(recipe), "seed": seed, "accuracy": result.accuracy,
                           "failed": result.failed, "seconds": time.perf_counter() - t0}
                    writer.write(row)
                    done[key] = row
                    print(f"{network} {resolution}:{stride} seed {seed}: {row['accuracy']:.4f} "
                          f"({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    finally:
        writer.close()

    print(f"the {args.budget} budget's final recipe ({recipe.train_images} train images x {recipe.epochs} epochs, "
          f"top-1 on {recipe.val_images} held out) on Fashion-MNIST, CPU, {args.threads} thread(s)\n")
    print("| input | stem stride | MobileNetV3-Small | MobileNetV3-Large | Large - Small (95% CI) | s / training (S, L) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for resolution, stride in args.inputs:
        acc, sec = {}, {}
        for network in NETWORKS:
            rows = sorted((r for k, r in done.items() if k[:4] == (network, resolution, str(stride), config)),
                          key=lambda r: r["seed"])
            acc[network] = {r["seed"]: r["accuracy"] for r in rows}
            sec[network] = statistics.median(r["seconds"] for r in rows) if rows else float("nan")
        seeds = sorted(set(acc["mobilenetv3_small"]) & set(acc["mobilenetv3_large"]))
        small = [acc["mobilenetv3_small"][s] for s in seeds]
        large = [acc["mobilenetv3_large"][s] for s in seeds]
        if len(seeds) > 1:
            d = paired_difference(large, small)
            diff = f"{100 * d['mean']:+.2f} [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}] pt"
        else:
            diff = "–"
        print(f"| {resolution}x{resolution} | {stride} | {fmt(small)} | {fmt(large)} | {diff} | {sec['mobilenetv3_small']:.0f}, "
              f"{sec['mobilenetv3_large']:.0f} |")
    print(f"\n(mean ± seed-to-seed sd over {args.seeds} seeds; results: {log}; "
          f"{time.perf_counter() - started:.0f} s this run)")


if __name__ == "__main__":
    main()
