"""How fast the LSTM controller samples architectures (with log-probabilities) and updates.

    .venv/bin/python experiments/benchmarks/controller_sampling.py [--stages 7] [--repeats 9] [--json]

The space is MnasNet's factorized one: per stage conv op (4), kernel (2), SE (2), skip (3),
filters (3), layers (3) and MobileNetV3's non-linearity (2), i.e. 7 decisions a stage. Prints a
markdown table: batch size, architectures per second (median and the p10-p90 spread over repeats)
and the time of one PPO update of that batch.
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from nas.runtime.cli import ArgumentParser, positive_int  # noqa: E402
from nas.search.controller import Controller, ControllerConfig  # noqa: E402

STAGE = [("op", 4), ("kernel", 2), ("se", 2), ("skip", 3), ("filters", 3), ("layers", 3), ("act", 2)]


def bench(ctrl: Controller, batch: int, repeats: int, min_s: float) -> dict[str, float]:
    ctrl.sample(batch)                                   # warm-up
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:                                      # each repeat runs >= min_s for a stable clock
            ctrl.sample(batch)
            n += batch
            elapsed = time.perf_counter() - start
            if elapsed >= min_s:
                break
        rates.append(n / elapsed)
    s = ctrl.sample(batch)
    rewards = torch.rand(batch, generator=torch.Generator().manual_seed(0))
    update_ms = []
    for _ in range(max(3, repeats // 3)):
        start = time.perf_counter()
        ctrl.update(s.tokens, rewards)
        update_ms.append(1e3 * (time.perf_counter() - start))
    p10, p90 = np.quantile(rates, [0.1, 0.9])
    return {"batch": batch, "archs_per_s": statistics.median(rates), "p10": float(p10), "p90": float(p90),
            "update_ms": statistics.median(update_ms)}


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=positive_int, default=7)
    parser.add_argument("--hidden", type=positive_int, default=100)
    parser.add_argument("--batches", default="1,8,16,64,256")
    parser.add_argument("--repeats", type=positive_int, default=9)
    parser.add_argument("--min-s", type=float, default=0.2, help="seconds per repeat")
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    decisions = STAGE * args.stages
    ctrl = Controller(decisions, ControllerConfig(hidden=args.hidden), seed=0)
    rows = [bench(ctrl, int(b), args.repeats, args.min_s) for b in args.batches.split(",")]
    if args.json:
        print(json.dumps({"decisions": len(decisions), "hidden": args.hidden, "threads": args.threads, "rows": rows}))
        return 0
    print(f"controller sampling: {len(decisions)} decisions, LSTM {args.hidden}, torch {torch.__version__}, "
          f"{args.threads} thread(s), {platform.processor() or platform.machine()}, {args.repeats} repeats")
    print("| batch | archs/s (median) | p10-p90 | PPO update (ms) |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['archs_per_s']:,.0f} | {r['p10']:,.0f}-{r['p90']:,.0f} | {r['update_ms']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
