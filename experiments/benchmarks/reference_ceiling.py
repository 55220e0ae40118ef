"""How high can the audit's reference ceiling go: the networks' true spread against one training's
noise, for a population of architectures, and the seeds a reference must average to rank with
Kendall tau >= 0.7.

    .venv/bin/python experiments/benchmarks/reference_ceiling.py [--population stratified]
        [--networks 12] [--seeds 2] [--space mobilenetv3_small] [--budget default]
        [--val-images 10000] [--workers 2] [--out experiments/runs/reference_ceiling]

`--networks` architectures of the space (`random` draws, or `stratified`: spread evenly in log
predicted Pixel-1 latency, `nas.audit.population.stratified_specs`) are each trained with the budget's
reference recipe at `--seeds` seeds, on `--workers` processes of one thread. From the seeds'
disagreement on each network comes one training's noise variance; the variance of the networks'
means, less its share of that noise, is their true spread. The measured seed-to-seed tau (mean over
pairs of seeds) is printed beside the one the spread and noise imply, and the tau two independent
means of k seeds would reach (Spearman-Brown), with the k that first reaches 0.7. With 4 or more
seeds, the tau between the means of the two halves of the seeds is measured too. Trainings are
appended to `results.jsonl` in `--out` as they end, so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nas.audit.fidelity import mean_ceiling, tau_of_reliability  # noqa: E402
from nas.audit.ranks import correlation  # noqa: E402
from nas.audit.population import POPULATIONS  # noqa: E402
from nas.accuracy.proxy_config import DataConfig  # noqa: E402
from nas.audit.published import predicted_latency_ms  # noqa: E402
from nas.budgets import get_budget  # noqa: E402
from nas.core.counts import count_macs  # noqa: E402
from nas.runtime.jsonl import JsonlWriter, read_jsonl  # noqa: E402

TARGET_TAU = 0.7


def train_one(spec_dict: dict, recipe_dict: dict, val_images: int, seed: int, threads: int) -> dict:
    """One reference training in a worker process (its own threads, its own copy of the data)."""
    from nas.accuracy.proxy_config import TrainConfig
    from nas.accuracy.proxy_data import load_data
    from nas.accuracy.short_training import train_spec
    from nas.core.spec import spec_from_dict
    from nas.runtime.session import set_threads

    set_threads(threads)
    recipe = TrainConfig(**recipe_dict)
    data = load_data(DataConfig(val_size=val_images), recipe.train_images, val_images, "cpu")
    result = train_spec(spec_from_dict(spec_dict), data, recipe, seed=seed)
    return {"accuracy": result.accuracy, "seconds": result.seconds, "failed": result.failed}


def interaction_variance(acc: list[list[float]]) -> float:
    """Networks x seeds: the variance left after each network's mean and each seed's mean are taken
    out. A seed also shifts every network alike (the same data order and flips: seed 1 scored 0.4
    points above seed 0 on all 12 stratified networks), which moves no rank, so it is not noise here."""
    n, k = len(acc), len(acc[0])
    grand = statistics.fmean(x for a in acc for x in a)
    net = [statistics.fmean(a) for a in acc]
    seed = [statistics.fmean(a[j] for a in acc) for j in range(k)]
    ss = sum((acc[i][j] - net[i] - seed[j] + grand) ** 2 for i in range(n) for j in range(k))
    return ss / ((n - 1) * (k - 1))


def tau(a, b) -> float:
    t, _ = correlation(a, b)
    return t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--population", choices=sorted(POPULATIONS), default="stratified")
    p.add_argument("--networks", type=int, default=12)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--space", default="mobilenetv3_small")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--budget", default="default")
    p.add_argument("--val-images", type=int, default=10000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "experiments/runs/reference_ceiling"))
    args = p.parse_args()

    specs = POPULATIONS[args.population](args.space, args.networks, args.sample_seed)
    recipe = replace(get_budget(args.budget).accuracy.reference, val_images=args.val_images)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"
    key = json.dumps({"recipe": asdict(recipe)}, sort_keys=True)
    done = {(r["arch"], r["seed"]): r for r in read_jsonl(log) if r.get("key") == key}
    todo = [(s, seed) for seed in range(args.seeds) for s in specs if (s.content_hash(), seed) not in done]
    started = time.perf_counter()
    writer = JsonlWriter(log)
    finished = len(specs) * args.seeds - len(todo)
    try:
        with ProcessPoolExecutor(args.workers) as pool:
            futures = {pool.submit(train_one, s.to_dict(), asdict(recipe), args.val_images, seed, args.threads):
                       (s, seed) for s, seed in todo}
            for f in as_completed(futures):
                s, seed = futures[f]
                row = {"key": key, "arch": s.content_hash(), "seed": seed, **f.result()}
                writer.write(row)
                done[(row["arch"], seed)] = row
                finished += 1
                print(f"{finished}/{len(specs) * args.seeds}: {s.content_hash()[:8]} seed {seed} "
                      f"{row['accuracy']:.4f} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    finally:
        writer.close()

    hashes = [s.content_hash() for s in specs]
    acc = [[done[(h, seed)]["accuracy"] for seed in range(args.seeds)] for h in hashes]
    ms = predicted_latency_ms(specs)
    k = args.seeds
    noise = interaction_variance(acc)  # one training's variance, less what a seed does to every network
    means = [statistics.fmean(a) for a in acc]
    spread = max(statistics.variance(means) - noise / k, 0.0)
    single = tau_of_reliability(spread / (spread + noise))
    pair_taus = [tau([a[i] for a in acc], [a[j] for a in acc]) for i, j in itertools.combinations(range(k), 2)]
    r = recipe
    print(f"{args.space}, {args.population} population of {len(specs)} (sample seed {args.sample_seed}): "
          f"predicted pixel1 {min(ms):.1f}..{max(ms):.1f} ms, {min(map(count_macs, specs)) / 1e6:.0f}.."
          f"{max(map(count_macs, specs)) / 1e6:.0f} M MACs")
    print(f"reference recipe of the {args.budget} budget: {r.train_images} train images x {r.epochs} epochs, "
          f"batch {r.batch_size}, top-1 on {args.val_images} held-out images; {k} seeds, {args.workers} "
          f"workers x {args.threads} thread\n")
    print("| network | pixel1 ms | M MACs | top-1 per seed | mean |")
    print("| --- | ---: | ---: | --- | ---: |")
    for s, m, a in sorted(zip(specs, ms, acc), key=lambda t: t[1]):
        print(f"| {s.content_hash()[:8]} | {m:.1f} | {count_macs(s) / 1e6:.0f} | "
              + ", ".join(f"{x:.4f}" for x in a) + f" | {statistics.fmean(a):.4f} |")
    print(f"\none training's noise sd {math.sqrt(noise):.4f} (what moves ranks: each seed's shift of every network "
          f"taken out: " + ", ".join(f"{statistics.fmean(a[j] for a in acc):.4f}" for j in range(k))
          + f" mean per seed); the networks' true spread sd {math.sqrt(spread):.4f} "
          f"(ratio {math.sqrt(spread / noise):.2f}); top-1 range {min(means):.4f}..{max(means):.4f}")
    print(f"seed-to-seed tau: measured {statistics.fmean(pair_taus):+.3f} (pairs: "
          + ", ".join(f"{t:+.3f}" for t in pair_taus) + f"), implied by spread and noise {single:+.3f}")
    if k >= 4:
        halves = [tau([statistics.fmean(a[i] for i in h) for a in acc],
                      [statistics.fmean(a[i] for i in range(k) if i not in h) for a in acc])
                  for h in itertools.combinations(range(k), k // 2) if 0 in h]
        print(f"tau between the means of two halves ({k // 2} seeds each), measured: {statistics.fmean(halves):+.3f} "
              f"(over {len(halves)} splits)")
    print("\n| reference = mean of k seeds | ceiling tau (two independent references) |")
    print("| ---: | ---: |")
    need = None
    for seeds in range(1, 41):
        t = single if seeds == 1 else mean_ceiling(single, seeds)
        if t is not None and t >= TARGET_TAU and need is None:
            need = seeds
        if seeds <= 8 or seeds == need:
            print(f"| {seeds} | {t:+.3f} |" if t is not None else f"| {seeds} | – |")
    seconds = statistics.median(row["seconds"] for row in done.values())
    print(f"\nseeds for tau >= {TARGET_TAU}: {need if need else '> 40'}"
          + (f"; an audit of 20 networks would train {20 * need} references, about "
             f"{20 * need * seconds / args.workers / 3600:.1f} h on {args.workers} workers at the median "
             f"{seconds:.0f} s a training" if need else ""))
    print(f"(results: {log}; {time.perf_counter() - started:.0f} s this run)")


if __name__ == "__main__":
    main()
