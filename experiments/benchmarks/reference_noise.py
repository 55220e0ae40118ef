"""Where the audit reference's seed-to-seed noise comes from: the trainings, or the finite set of
images they are scored on?

    .venv/bin/python experiments/benchmarks/reference_noise.py [--seeds 6] [--slices 6] [--slice-images 5000]
        [--budget default] [--spec search_spaces/reference/mobilenetv3_small.yaml] [--audit RESULTS.jsonl]
        [--threads 1] [--out experiments/runs/reference_noise]

One network is trained with the budget's reference recipe at `--seeds` seeds; each trained model is
scored on `--slices` disjoint held-out slices of `--slice-images` images. Across seeds, the
covariance of two slices' accuracies is the part of the noise that the training itself makes (it
follows the model to any image set); the rest of one slice's variance is the finite sample of
images, which shrinks as 1/images (the effect described for CIFAR-10 by Jordan, "On the variance
of neural network training", 2023). The table gives the reference's seed-to-seed sd this implies
for larger validation sets. With `--audit` (an audit's results.jsonl trained with the same
recipe at two seeds), it also estimates the networks' true spread there and the ceiling tau each
validation size would give, for one seed and for the mean of two (Greiner's and Spearman-Brown's
relations, `nas.audit.fidelity.mean_ceiling`). Trainings are appended to `results.jsonl` in
`--out` as they end, so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import asdict, replace
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nas.audit.fidelity import mean_ceiling, tau_of_reliability  # noqa: E402
from nas.accuracy.proxy_config import DataConfig  # noqa: E402
from nas.accuracy.proxy_data import load_data  # noqa: E402
from nas.accuracy.short_training import Trainer  # noqa: E402
from nas.accuracy.training_core import evaluate_accuracy  # noqa: E402
from nas.budgets import get_budget  # noqa: E402
from nas.core.spec_file import load_spec  # noqa: E402
from nas.runtime.jsonl import JsonlWriter, read_jsonl  # noqa: E402
from nas.runtime.paths import REFERENCE_DIR  # noqa: E402
from nas.runtime.session import set_threads  # noqa: E402


def slice_accuracies(trainer: Trainer, slices: int, size: int) -> list[float]:
    data, batch = trainer.data, trainer.config.eval_batch_size
    out = []
    for k in range(slices):
        x, y = data.val_x[k * size:(k + 1) * size], data.val_y[k * size:(k + 1) * size]
        batches = ((data.inputs(x[i:i + batch]), y[i:i + batch]) for i in range(0, size, batch))
        out.append(evaluate_accuracy(trainer.model, batches)[0])
    return out


def decompose(per_seed: list[list[float]]) -> tuple[float, float]:
    """(training variance, finite-sample variance at one slice) from seeds x slices accuracies."""
    slices = len(per_seed[0])
    covs = [statistics.covariance([s[a] for s in per_seed], [s[b] for s in per_seed])
            for a, b in combinations(range(slices), 2)]
    total = statistics.fmean(statistics.variance([s[a] for s in per_seed]) for a in range(slices))
    training = max(statistics.fmean(covs), 0.0)
    return training, max(total - training, 0.0)


def audit_spread(path: Path) -> tuple[float, float, int]:
    """(variance of the networks' true accuracies, one seed's noise variance, N) from an audit's two
    reference seeds: the seeds' difference gives the noise, the mean's variance the rest."""
    seeds: dict[str, dict[str, float]] = defaultdict(dict)
    for row in read_jsonl(path):
        if row["proxy"] == "reference" and row["result"].get("accuracy") is not None:
            seeds[row["arch_hash"]][row["fingerprint"]] = row["result"]["accuracy"]
    pairs = [sorted(v.items()) for v in seeds.values() if len(v) == 2]
    a, b = [p[0][1] for p in pairs], [p[1][1] for p in pairs]
    noise = statistics.variance([x - y for x, y in zip(a, b)]) / 2
    spread = statistics.variance([(x + y) / 2 for x, y in zip(a, b)]) - noise / 2
    return max(spread, 0.0), noise, len(pairs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--slices", type=int, default=6)
    p.add_argument("--slice-images", type=int, default=5000)
    p.add_argument("--budget", default="default")
    p.add_argument("--spec", default=str(REFERENCE_DIR / "mobilenetv3_small.yaml"))
    p.add_argument("--audit", help="an audit's results.jsonl (same reference recipe, two seeds)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "experiments/runs/reference_noise"))
    args = p.parse_args()
    set_threads(args.threads)
    pool = args.slices * args.slice_images
    audit_images = get_budget(args.budget).accuracy.reference.val_images  # what the audit scores on
    recipe = replace(get_budget(args.budget).accuracy.reference, val_images=pool)
    data = load_data(DataConfig(val_size=pool), recipe.train_images, pool, "cpu")
    spec = load_spec(args.spec)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"
    key = json.dumps({"recipe": asdict(recipe), "spec": spec.content_hash(), "slices": args.slices,
                      "slice_images": args.slice_images}, sort_keys=True)
    done = {r["seed"]: r for r in read_jsonl(log) if r["key"] == key}
    writer = JsonlWriter(log)
    started = time.perf_counter()
    try:
        for seed in range(args.seeds):
            if seed in done:
                continue
            trainer = Trainer(spec, data, recipe, seed=seed)
            result = trainer.run()
            row = {"key": key, "seed": seed, "accuracy": result.accuracy, "seconds": result.seconds,
                   "slices": slice_accuracies(trainer, args.slices, args.slice_images)}
            writer.write(row)
            done[seed] = row
            print(f"seed {seed}: {result.accuracy:.4f} on {pool} images ({result.seconds:.0f} s); slices "
                  + " ".join(f"{a:.4f}" for a in row["slices"]), file=sys.stderr, flush=True)
    finally:
        writer.close()

    per_seed = [done[s]["slices"] for s in sorted(done)]
    training, sample = decompose(per_seed)
    r = recipe
    print(f"{spec.name}, the {args.budget} budget's reference recipe ({r.train_images} train images x {r.epochs} "
          f"epochs, batch {r.batch_size}), {len(per_seed)} seeds x {args.slices} disjoint slices of "
          f"{args.slice_images} held-out images\n")
    print(f"seed-to-seed sd on one slice: {math.sqrt(training + sample):.4f}; of it, the training's "
          f"{math.sqrt(training):.4f} and the images' {math.sqrt(sample):.4f} (at {args.slice_images} images)")
    spread = noise_5k = n_audit = None
    if args.audit:
        spread, noise_5k, n_audit = audit_spread(Path(args.audit))
        print(f"audit ({n_audit} networks, 2 reference seeds on {audit_images} images): one seed's "
              f"noise sd {math.sqrt(noise_5k):.4f}, the networks' true spread sd {math.sqrt(spread):.4f}")
    print()
    print("| validation images | seed-to-seed sd (predicted) | ceiling tau, one seed | ceiling tau, mean of 2 seeds |")
    print("| ---: | ---: | ---: | ---: |")
    for images in sorted({audit_images, 10000, 20000, 30000, 50000}):
        var = training + sample * args.slice_images / images
        cells = ["–", "–"]
        if spread is not None:  # the audit's noise at its own images, rescaled like this network's
            var = noise_5k * var / (training + sample * args.slice_images / audit_images)
            reliability = spread / (spread + var)
            single = tau_of_reliability(reliability)
            cells = [f"{single:+.3f}", f"{mean_ceiling(single, 2):+.3f}"]
        print(f"| {images} | {math.sqrt(var):.4f} | {cells[0]} | {cells[1]} |")
    print(f"\n(results: {log}; {time.perf_counter() - started:.0f} s this run)")


if __name__ == "__main__":
    main()
