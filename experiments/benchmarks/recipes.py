"""The training recipes on MobileNetV3-Small and -Large: accuracy, seed-to-seed noise, and where
accuracy saturates with epochs.

    .venv/bin/python experiments/benchmarks/recipes.py [--budget default] [--seeds 3] [--curve-epochs 10]
        [--curve-seeds 2] [--threads 2] [--out experiments/runs/recipes]

For each network: the budget's search-time proxy recipe and its final (comparison) recipe, each at
`--seeds` seeds (mean, sample sd, min..max, seconds); then a learning curve: the final recipe's
data and schedule stretched to `--curve-epochs` epochs, top-1 after every epoch, at
`--curve-seeds` seeds. Every training is appended to `results.jsonl` in `--out` as it ends, so an
interrupted run resumes; the table goes to stdout and the curve to docs/figures/recipe_curve.png.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nas.accuracy.proxy_config import DataConfig  # noqa: E402
from nas.accuracy.proxy_data import load_data  # noqa: E402
from nas.accuracy.short_training import Trainer  # noqa: E402
from nas.budgets import get_budget  # noqa: E402
from nas.core.spec_file import load_spec  # noqa: E402
from nas.runtime.jsonl import JsonlWriter, read_jsonl  # noqa: E402
from nas.runtime.paths import REFERENCE_DIR  # noqa: E402
from nas.runtime.session import set_threads  # noqa: E402

NETWORKS = ("mobilenetv3_small", "mobilenetv3_large")


def train(spec, recipe, seed: int, per_epoch: bool) -> dict:
    data = load_data(DataConfig(), recipe.train_images, recipe.val_images, "cpu")
    started = time.perf_counter()
    curve: list[float] = []
    result = Trainer(spec, data, recipe, seed=seed).run(
        on_epoch=(lambda _, record: curve.append(record["accuracy"])) if per_epoch else None)
    return {"accuracy": result.accuracy, "failed": result.failed, "seconds": time.perf_counter() - started,
            "curve": curve}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--budget", default="default")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--curve-epochs", type=int, default=10)
    p.add_argument("--curve-seeds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "experiments/runs/recipes"))
    p.add_argument("--plot", default=str(ROOT / "docs/figures/recipe_curve.png"))
    args = p.parse_args()
    set_threads(args.threads)
    budget = get_budget(args.budget).accuracy
    recipes = {"proxy": budget.proxy, "final": budget.final,
               "curve": replace(budget.final, epochs=args.curve_epochs, steps=None)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"
    done = {(r["network"], r["recipe"], json.dumps(r["config"], sort_keys=True), r["seed"]): r
            for r in read_jsonl(log)}
    writer = JsonlWriter(log)
    started = time.perf_counter()
    try:
        for network in NETWORKS:
            spec = load_spec(REFERENCE_DIR / f"{network}.yaml")
            for name, recipe in recipes.items():
                for seed in range(args.curve_seeds if name == "curve" else args.seeds):
                    key = (network, name, json.dumps(asdict(recipe), sort_keys=True), seed)
                    if key in done:
                        continue
                    row = {"network": network, "recipe": name, "config": asdict(recipe), "seed": seed,
                           **train(spec, recipe, seed, per_epoch=name == "curve")}
                    writer.write(row)
                    done[key] = row
                    print(f"{network} {name} seed {seed}: {row['accuracy']:.4f} ({row['seconds']:.0f} s)",
                          file=sys.stderr, flush=True)
    finally:
        writer.close()

    rows = list(done.values())
    print(f"recipes of the {args.budget} budget on Fashion-MNIST at 32x32, CPU, {args.threads} threads")
    for name in ("proxy", "final"):
        r = recipes[name]
        print(f"  {name}: {r.train_images} train images x {r.epochs} epoch(s), batch {r.batch_size}, "
              f"peak lr {r.learning_rate:g}, top-1 on {r.val_images} held-out images")
    print()
    print("| network | recipe | seeds | top-1 mean | seed-to-seed sd | min..max | seconds (median) |")
    print("| --- | --- | ---: | ---: | ---: | --- | ---: |")
    for network in NETWORKS:
        for name in ("proxy", "final", "curve"):
            picked = [r for r in rows if r["network"] == network and r["recipe"] == name
                      and r["config"] == asdict(recipes[name])]
            if not picked:
                continue
            acc = [r["accuracy"] for r in picked]
            sd = statistics.stdev(acc) if len(acc) > 1 else float("nan")
            label = name if name != "curve" else f"final, {args.curve_epochs} epochs"
            print(f"| {network} | {label} | {len(acc)} | {statistics.fmean(acc):.4f} | {sd:.4f} | "
                  f"{min(acc):.4f}..{max(acc):.4f} | {statistics.median(r['seconds'] for r in picked):.0f} |")
    plot_curve(rows, recipes["curve"], args.curve_epochs, Path(args.plot))
    print(f"\ncurve: {args.plot}; results: {log}  ({time.perf_counter() - started:.0f} s this run)")


def plot_curve(rows: list[dict], recipe, epochs: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for network, color in zip(NETWORKS, ("tab:blue", "tab:orange")):
        curves = [r["curve"] for r in rows if r["network"] == network and r["recipe"] == "curve"
                  and r["config"] == asdict(recipe)]
        if not curves:
            continue
        xs = range(1, len(curves[0]) + 1)
        for c in curves:
            ax.plot(xs, c, color=color, alpha=0.35, lw=1)
        mean = [statistics.fmean(c[i] for c in curves) for i in range(len(curves[0]))]
        ax.plot(xs, mean, "o-", color=color, label=f"{network} (mean of {len(curves)} seeds)")
    ax.set_xlabel(f"epoch of a {epochs}-epoch cosine schedule ({recipe.train_images} images per epoch)")
    ax.set_ylabel(f"top-1 on {recipe.val_images} held-out Fashion-MNIST images")
    ax.set_title("Where the final recipe saturates")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
