"""Every zero-cost proxy on MobileNetV3-Large at the proxy's size (slow: a network 50x the tiny spec's).
How long each score takes is a benchmark (docs/benchmarks.md), not an assertion."""
import math

import torch

from helpers import REFERENCE
from nas.accuracy import ZERO_COST, adapt_spec, zero_cost_score
from nas.core.spec_file import load_spec


def test_each_score_is_finite_for_mobilenetv3_large():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        spec = adapt_spec(load_spec(REFERENCE / "mobilenetv3_large.yaml"), 10, 32)
        images = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.arange(64) % 10
        for name in ZERO_COST:
            assert math.isfinite(zero_cost_score(name, spec, images, labels)), name
    finally:
        torch.set_num_threads(threads)
