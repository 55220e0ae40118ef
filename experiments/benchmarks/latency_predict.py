"""Batch latency prediction throughput: specs per second for the host table and pixel1.

    python experiments/benchmarks/latency_predict.py [--specs 20000] [--repeats 5]

Specs are sampled from the MobileNetV3-Large space beforehand (all their ops in the table); the
devices are timed interleaved, and the table prints the median and spread over repeats.
"""
import argparse
import time

import numpy as np

from nas.latency.devices import get_device
from nas.core.space import load_space


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--specs", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--space", default="mobilenetv3_large")
    args = p.parse_args()
    space = load_space(args.space)
    rng = np.random.default_rng(0)
    specs = [space.sample_spec(rng) for _ in range(args.specs)]
    devices = {name: get_device(name) for name in ("host", "pixel1")}
    devices["host"].ensure(specs)  # lookups only from here on: no measurement inside the timing
    rates = {name: [] for name in devices}
    for _ in range(args.repeats):
        for name, device in devices.items():  # interleaved, so drift hits both alike
            start = time.perf_counter()
            device.predict_many(specs)
            rates[name].append(len(specs) / (time.perf_counter() - start))
    print(f"{len(specs):,} specs of {space.name}, {args.repeats} repeats")
    print(f"| device | median specs/s | min | max |")
    print(f"| --- | ---: | ---: | ---: |")
    for name, r in rates.items():
        print(f"| {name} | {np.median(r):,.0f} | {min(r):,.0f} | {max(r):,.0f} |")


if __name__ == "__main__":
    main()
