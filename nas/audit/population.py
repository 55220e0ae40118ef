"""Which architectures an audit ranks: random draws from a search space, or draws spread evenly
over its predicted latency. Light to import (no torch, no scipy), so the command line can list the names."""
from __future__ import annotations

import numpy as np

from nas.audit.published import predicted_latency_ms
from nas.core.space import load_space
from nas.core.spec import ArchSpec
from nas.runtime.errors import UserError


def sample_specs(space_name: str, samples: int, seed: int) -> list[ArchSpec]:
    """`samples` distinct architectures of a search space, drawn with `seed`."""
    specs = _distinct_draws(space_name, samples, seed)
    if len(specs) < samples:
        raise UserError(f"the space holds fewer than {samples} distinct architectures", setting="samples")
    return specs


def _distinct_draws(space_name: str, samples: int, seed: int) -> list[ArchSpec]:
    """Up to `samples` distinct random architectures: fewer when 100 draws per architecture, or
    1,000 draws in a row, find no new one (a small space is exhausted)."""
    space = load_space(space_name)
    rng = np.random.default_rng(seed)
    specs: dict[str, ArchSpec] = {}
    misses = 0
    for _ in range(100 * samples):
        if len(specs) == samples or misses == 1000:
            break
        spec = space.sample_spec(rng)
        misses = 0 if spec.content_hash() not in specs else misses + 1
        specs.setdefault(spec.content_hash(), spec)
    return list(specs.values())


def stratified_specs(space_name: str, samples: int, seed: int, pool: int = 100) -> list[ArchSpec]:
    """`samples` architectures spread evenly in log predicted Pixel-1 latency over the space.

    Random draws crowd the middle of a space (each network sums many per-layer choices), where
    networks differ least; the search, though, ranks networks from the space's small end to its
    large one. Among `pool` x `samples` random draws, the one nearest each of `samples` points
    evenly spaced in log latency between the 1st and 99th percentile is taken (each once)."""
    candidates = _distinct_draws(space_name, pool * samples, seed)
    if len(candidates) < samples:
        raise UserError(f"the space holds fewer than {samples} distinct architectures", setting="samples")
    log_ms = np.log(predicted_latency_ms(candidates))
    targets = np.linspace(*np.percentile(log_ms, [1, 99]), samples)
    free = np.ones(len(candidates), dtype=bool)
    chosen = []
    for t in targets:
        i = int(np.argmin(np.where(free, np.abs(log_ms - t), np.inf)))
        free[i] = False
        chosen.append(candidates[i])
    return chosen


POPULATIONS = {"random": sample_specs, "stratified": stratified_specs}
