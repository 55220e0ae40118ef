"""Proxy throughput on this machine: training and evaluation images/s, and zero-cost seconds.

For the MobileNetV3-Small and -Large proxies (the reference specs adapted to 10 classes at the
proxy resolution, as a proxy trains them), repeated a few times after a warm-up; prints the
median and the spread (min..max) of every number.

    .venv/bin/python experiments/benchmarks/proxy_throughput.py [--repeats 5] [--threads 2] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nas.core.counts import count_macs, count_params  # noqa: E402
from nas.accuracy.proxy_config import TrainConfig  # noqa: E402
from nas.accuracy.proxy_data import ProxyData  # noqa: E402
from nas.runtime.session import set_threads  # noqa: E402
from nas.accuracy.short_training import Trainer  # noqa: E402
from nas.accuracy.training_core import evaluate_accuracy  # noqa: E402
from nas.accuracy.zero_cost import ZERO_COST  # noqa: E402
from nas.core.spec_file import load_spec  # noqa: E402

NETWORKS = ("mobilenetv3_small", "mobilenetv3_large")


def synthetic_data(n: int, resolution: int) -> ProxyData:
    """Random Fashion-MNIST-shaped data: throughput does not depend on the pixels."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, resolution, resolution), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    stat = torch.tensor([0.5]).view(1, 1, 1, 1)
    return ProxyData("synthetic", 10, resolution, x, y, x, y, stat, stat)


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def bench_network(name: str, data: ProxyData, recipe: TrainConfig, repeats: int, zc_batch: int) -> dict:
    spec = load_spec(ROOT / "search_spaces" / "reference" / f"{name}.yaml")
    trainer = Trainer(spec, data, recipe)
    n_train = trainer.steps_per_epoch * trainer.batch_size
    trainer.train_epoch()  # warm-up: allocator and kernel caches
    train, evaluate = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.train_epoch()
        train.append(n_train / (time.perf_counter() - start))
        start = time.perf_counter()
        evaluate_accuracy(trainer.model, data.batches("val", recipe.eval_batch_size))
        evaluate.append(data.val_x.shape[0] / (time.perf_counter() - start))
    images, labels = data.minibatch(zc_batch)
    zero_cost = {}
    for proxy in ZERO_COST.values():
        proxy.fn(trainer.spec, images, labels, 0)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            proxy.fn(trainer.spec, images, labels, 0)
            times.append(time.perf_counter() - start)
        zero_cost[proxy.name] = spread(times)
    return {"network": name, "macs": count_macs(trainer.spec), "params": count_params(trainer.spec),
            "stem_stride": trainer.spec.stem.s, "train_images_per_s": spread(train),
            "eval_images_per_s": spread(evaluate), "zero_cost_s": zero_cost}


def table(results: list[dict], args) -> str:
    def fmt(s, digits=0):
        return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}..{s['max']:.{digits}f})"

    lines = [f"Proxy throughput at {args.resolution}x{args.resolution}, batch {args.batch_size} (eval "
             f"{args.eval_batch_size}), {args.threads} threads, median (min..max) of {args.repeats} repeats",
             "",
             "| network | MACs | params | train images/s | eval images/s |",
             "|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['network']} (stem s{r['stem_stride']}) | {r['macs'] / 1e6:.1f}M | {r['params'] / 1e6:.2f}M | "
                     f"{fmt(r['train_images_per_s'])} | {fmt(r['eval_images_per_s'])} |")
    names = list(results[0]["zero_cost_s"])
    lines += ["", f"Zero-cost proxies, seconds per network (minibatch {args.zc_batch})", "",
              "| network | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for r in results:
        lines.append(f"| {r['network']} | " + " | ".join(fmt(r["zero_cost_s"][n], 3) for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="default: the CPUs this process may use")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-batch-size", type=int, default=500)
    p.add_argument("--images", type=int, default=1024, help="training images per timed epoch")
    p.add_argument("--zc-batch", type=int, default=64)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    args.threads = set_threads(args.threads)
    data = synthetic_data(args.images, args.resolution)
    recipe = TrainConfig(train_images=args.images, val_images=args.images, batch_size=args.batch_size,
                         eval_batch_size=args.eval_batch_size, epochs=args.repeats + 1)
    results = [bench_network(n, data, replace(recipe), args.repeats, args.zc_batch) for n in NETWORKS]
    print(table(results, args))
    if args.json:
        print(json.dumps({"config": vars(args), "results": results}, sort_keys=True))


if __name__ == "__main__":
    main()
