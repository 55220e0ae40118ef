"""Zero-cost proxies: each is finite and repeatable on a tiny network, and orders widths sensibly."""
import math
import time

import pytest
import torch

from nas.runtime.errors import UserError
from nas.accuracy import ZERO_COST, adapt_spec, zero_cost_score
from nas.core.spec import load_spec, scale_width
from helpers import REFERENCE
from helpers.data import one_torch_thread  # noqa: F401 (autouse fixture)
from helpers.data import TINY

REQUIRED = {"naswot", "synflow", "grad_norm", "zen", "params", "macs"}


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 32, 32, generator=gen).contiguous(memory_format=torch.channels_last)
    return images, torch.arange(16) % 10


@pytest.fixture(scope="module")
def tiny():
    return adapt_spec(TINY, 10, 32)


def test_registry_has_the_required_proxies():
    from nas.accuracy.config import ZERO_COST_NAMES

    assert REQUIRED <= set(ZERO_COST) and tuple(ZERO_COST) == ZERO_COST_NAMES  # the CLI's list is the registry's
    with pytest.raises(UserError, match="unknown zero-cost proxy"):
        zero_cost_score("oracle", TINY, torch.zeros(1), torch.zeros(1))


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_score_is_finite_and_repeatable(name, tiny, batch):
    first = zero_cost_score(name, tiny, *batch, seed=0)
    assert math.isfinite(first)
    assert zero_cost_score(name, tiny, *batch, seed=0) == first


@pytest.mark.parametrize("name", ["params", "macs", "synflow", "zen"])
def test_wider_network_scores_higher(name, tiny, batch):
    wide = scale_width(tiny, 2.0)
    assert zero_cost_score(name, wide, *batch) > zero_cost_score(name, tiny, *batch)


def test_naswot_sees_more_distinct_codes_in_a_wider_network(tiny, batch):
    # More units give binary codes that tell the images apart better: a larger log-determinant.
    assert zero_cost_score("naswot", scale_width(tiny, 2.0), *batch) > zero_cost_score("naswot", tiny, *batch)


def test_synflow_ignores_batchnorm_and_data(tiny, batch):
    images, labels = batch
    assert zero_cost_score("synflow", tiny, images, labels) == zero_cost_score("synflow", tiny, images * 7 + 3, labels)


@pytest.mark.slow
def test_each_score_is_well_under_a_second_for_mobilenetv3_large():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _time_each_score()
    finally:
        torch.set_num_threads(threads)


def _time_each_score():
    spec = adapt_spec(load_spec(REFERENCE / "mobilenetv3_large.yaml"), 10, 32)
    images = torch.randn(64, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(64) % 10
    for name in ZERO_COST:
        zero_cost_score(name, spec, images, labels)  # warm-up: first-call allocations
        start = time.perf_counter()
        zero_cost_score(name, spec, images, labels)
        assert time.perf_counter() - start < 1.0, name
