"""Does the host table see width and kernel size? Op sums of a network, twice as wide, and with 7x7 kernels.

    python experiments/benchmarks/latency_width_kernel.py [--space tests/data/tiny_space.yaml] [--repeats 7]
        [--rounds 6] [--runs 10]

Every repeat times all ops of the three networks together, interleaved across rounds in a fresh random
order (nas.latency.build.time_interleaved), and sums each network's op medians; the table prints the
median and spread over repeats, and in how many repeats the wider / larger-kernel network came out
slower. On tiny ops the differences are a few microseconds, within the noise of a loaded machine:
this is why the comparison is a benchmark and not a unit test.
"""
import argparse
from dataclasses import replace

import numpy as np

from nas.core.space import load_space
from nas.core.spec import scale_width
from nas.latency.build import Schedule, op_onnx, time_interleaved
from nas.latency.ops import ops_of


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="tests/data/tiny_space.yaml")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()
    seed = load_space(args.space).seed_spec()
    networks = {"seed": seed, "width x2": scale_width(seed, 2.0),
                "k=7": seed.with_blocks([replace(b, k=7) for b in seed.blocks])}
    ops = {op.key: op for spec in networks.values() for op in ops_of(spec)}
    keys = list(ops)
    models = [op_onnx(ops[k]) for k in keys]
    schedule = Schedule(rounds=args.rounds, runs_per_round=args.runs, warmup=3)
    sums = {name: [] for name in networks}
    for r in range(args.repeats):
        timed = dict(zip(keys, time_interleaved(models, schedule=schedule, seed=r)))
        for name, spec in networks.items():
            sums[name].append(sum(float(np.median(timed[op.key])) for op in ops_of(spec)))
    base = np.array(sums["seed"])
    print(f"{seed.name} from {args.space}: {len(keys)} ops, {args.repeats} repeats of "
          f"{args.rounds} rounds x {args.runs} runs")
    print("| network | median op sum, ms | min | max | ratio to seed | repeats slower than seed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, values in sums.items():
        v = np.array(values)
        slower = "" if name == "seed" else f"{int(np.sum(v > base))}/{len(v)}"
        print(f"| {name} | {np.median(v):.4f} | {v.min():.4f} | {v.max():.4f} | {np.median(v / base):.3f} | {slower} |")


if __name__ == "__main__":
    main()
