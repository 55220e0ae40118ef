"""What a search costs when queries are cheap: the pipeline's search stage, and one query by part.

    .venv/bin/python experiments/benchmarks/search_cost.py [--algorithms guided-evolution,controller]
        [--samples 2000] [--repeats 3] [--target-ms 25]
        [--out experiments/benchmarks/results/search_cost.md]

1. The search stage of `python -m nas.search --space ofa_mobilenetv3 --device note10 --proxy
   ofa-imagenet --target-ms 25 --samples 2000 --deploy none`, each algorithm in a fresh process and a
   fresh run directory, the algorithms interleaved `--repeats` times: the stage's wall seconds as
   pipeline.json records them (median, min-max), and the whole command's.
2. One query by part, in process (`Evaluator` and `SearchSpace` as the search uses them, batches of
   the searcher's size, one thread): sampling (ask: the controller's LSTM, or the guided search's
   fits, breeding and latency screen), decoding tokens to networks, latency (the Note10 tables),
   accuracy (OFA's predictor, batched), update (tell: the controller's PPO step). Median of the
   repeats, in milliseconds per query.

Time it alone on the machine: two cores shared with anything else swing 10-25%.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PARTS = ("sampling", "decoding", "latency", "accuracy", "update")


def stage_seconds(algorithm: str, samples: int, target: float) -> tuple[float, float]:
    """(search stage seconds, whole command seconds) of one fresh pipeline run."""
    with tempfile.TemporaryDirectory(prefix="cost-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "nas.search", "--space", "ofa_mobilenetv3", "--device", "note10", "--proxy",
               "ofa-imagenet", "--target-ms", str(target), "--samples", str(samples), "--algorithm", algorithm,
               "--deploy", "none", "--out", str(out), "--quiet", "--json"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                       env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        whole = time.perf_counter() - t0
        state = json.loads((out / "pipeline.json").read_text())
        return float(state["done"]["search"]["seconds"]), whole


def parts(algorithm: str, samples: int, target: float) -> dict[str, float]:
    """Milliseconds a query in each part of the in-process loop."""
    import numpy as np
    import torch

    from nas.accuracy.proxy import make_proxy
    from nas.core.space import load_space
    from nas.latency.devices import get_device
    from nas.search.algorithms import make_algorithm
    from nas.search.guided import token_latency
    from nas.search.reward import RewardConfig

    torch.set_num_threads(1)
    space, device, proxy = load_space("ofa_mobilenetv3"), get_device("note10"), make_proxy("ofa-imagenet")
    options = {}
    if algorithm == "guided-evolution":
        options = {"target_ms": target, "latency": token_latency(space, device)}
    elif algorithm in ("controller", "tunas"):
        options = {"batch_size": 16}
    alg = make_algorithm(algorithm, space, seed=0, **options)
    reward = RewardConfig.hard(target) if algorithm == "guided-evolution" else RewardConfig.tunas(target)
    clock = dict.fromkeys(PARTS, 0.0)
    done = 0
    while done < samples:
        t = [time.perf_counter()]
        batch = []
        while len(batch) < 128 and done + len(batch) < samples and (s := alg.ask()) is not None:
            batch.append(s)
        t.append(time.perf_counter())
        specs = [space.decode(s.tokens) for s in batch]
        t.append(time.perf_counter())
        ms = device.predict_many(specs)[:, 0]
        t.append(time.perf_counter())
        acc = np.array([r["accuracy"] for r in proxy.evaluate_many(specs)])
        rewards = reward.batch(acc, ms)
        t.append(time.perf_counter())
        for s, r in zip(batch, np.atleast_1d(rewards)):
            alg.tell(s.index, float(r))
        t.append(time.perf_counter())
        for k, (a, b) in zip(PARTS, zip(t, t[1:])):
            clock[k] += b - a
        done += len(batch)
    return {k: 1e3 * v / samples for k, v in clock.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithms", default="guided-evolution,controller")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--target-ms", type=float, default=25.0)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments/benchmarks/results/search_cost.md")
    args = ap.parse_args()
    algorithms = args.algorithms.split(",")
    stage: dict[str, list[tuple[float, float]]] = {a: [] for a in algorithms}
    cost: dict[str, list[dict[str, float]]] = {a: [] for a in algorithms}
    for r in range(args.repeats):          # interleaved: A B A B ...
        for a in algorithms:
            stage[a].append(stage_seconds(a, args.samples, args.target_ms))
            cost[a].append(parts(a, args.samples, args.target_ms))
            print(f"repeat {r + 1}: {a}: search stage {stage[a][-1][0]:.1f} s", flush=True)
    lines = [f"python experiments/benchmarks/search_cost.py {' '.join(sys.argv[1:])}", "",
             f"OFA's space, Note10 tables, OFA's accuracy predictor, target {args.target_ms:g} ms, {args.samples:,} "
             f"queries, {args.repeats} repeats interleaved; median (min-max).", "",
             "| algorithm | search stage, s | whole command, s |", "| --- | ---: | ---: |"]
    for a in algorithms:
        s, w = [x for x, _ in stage[a]], [y for _, y in stage[a]]
        lines.append(f"| {a} | {statistics.median(s):.1f} ({min(s):.1f}-{max(s):.1f}) | "
                     f"{statistics.median(w):.1f} ({min(w):.1f}-{max(w):.1f}) |")
    lines += ["", "Milliseconds a query, by part (in process, median of the repeats):", "",
              "| algorithm | " + " | ".join(PARTS) + " | total |", "| --- |" + " ---: |" * (len(PARTS) + 1)]
    for a in algorithms:
        med = {k: statistics.median(c[k] for c in cost[a]) for k in PARTS}
        lines.append(f"| {a} | " + " | ".join(f"{med[k]:.2f}" for k in PARTS) + f" | {sum(med.values()):.2f} |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
