"""Why one epoch leaves MobileNetV3-Large far from converged: the default proxy recipe against
changes of one thing at a time (batch size and steps, peak rate, warm-up, augmentation, optimizer,
length), at two seeds each, on the default budget's 2,000 Fashion-MNIST images.

    .venv/bin/python experiments/benchmarks/proxy_recipe_sweep.py [--network mobilenetv3_large] [--seeds 2]
        [--variants default,bs32_lr.125,...] [--threads 2] > experiments/benchmarks/results/proxy_recipe_sweep.txt

Prints one JSON line per training (top-1 on the 2,000 held-out images, mean training loss of the
last epoch) and then a table of the mean per variant.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nas.accuracy.proxy_config import DataConfig  # noqa: E402
from nas.accuracy.proxy_data import load_data  # noqa: E402
from nas.accuracy.short_training import train_spec  # noqa: E402
from nas.budgets import get_budget  # noqa: E402
from nas.core.spec_file import load_spec  # noqa: E402
from nas.runtime.paths import REFERENCE_DIR  # noqa: E402
from nas.runtime.session import set_threads  # noqa: E402

VARIANTS = {
    "default": {},
    "bs32_lr.125": dict(batch_size=32, lr=0.125),
    "bs32_lr.25": dict(batch_size=32, lr=0.25),
    "bs16_lr.1": dict(batch_size=16, lr=0.1),
    "noaug": dict(augment=False),
    "warm0.2": dict(warmup=0.2),
    "lr0.5": dict(lr=0.5),
    "lr0.1": dict(lr=0.1),
    "rmsprop": dict(optimizer="rmsprop", lr=None),
    "3ep": dict(epochs=3),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--network", default="mobilenetv3_large")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    set_threads(args.threads)
    base = get_budget("default").accuracy.proxy
    data = load_data(DataConfig(), base.train_images, base.val_images, "cpu")
    spec = load_spec(REFERENCE_DIR / f"{args.network}.yaml")
    results: dict[str, list[float]] = {}
    for variant in args.variants.split(","):
        for seed in range(args.seeds):
            started = time.perf_counter()
            r = train_spec(spec, data, replace(base, **VARIANTS[variant]), seed=seed)
            results.setdefault(variant, []).append(r.accuracy)
            print(json.dumps({"net": args.network, "variant": variant, "seed": seed, "acc": r.accuracy,
                              "loss": r.loss, "steps": r.steps, "s": round(time.perf_counter() - started, 1)}),
                  flush=True)
    print(f"\n| variant ({args.network}, {base.train_images} images) | top-1 per seed | mean |")
    print("| --- | --- | ---: |")
    for variant, acc in results.items():
        print(f"| {variant} | {', '.join(f'{a:.4f}' for a in acc)} | {statistics.fmean(acc):.4f} |")


if __name__ == "__main__":
    main()
