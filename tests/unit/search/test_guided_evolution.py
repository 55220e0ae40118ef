"""Evolution guided by a linear model of past accuracies (`guided-evolution`), pinned on a tiny
deterministic oracle."""
from __future__ import annotations

import numpy as np
import pytest

from nas.core.space import load_space
from nas.groundtruth.ofa import ofa_space
from nas.runtime.errors import UserError
from nas.search.algorithms import make_algorithm
from nas.search.guided import GuidedEvolution, Ridge, TokenFeatures

LIMIT = 40  # latency: the token sum of the network's used decisions
BONUS = 10  # accuracy: the same sum, plus BONUS at the largest resolution (best: 40 + BONUS)


@pytest.fixture(scope="module")
def space():
    return ofa_space()


def used_sum(space, tokens) -> float:
    t = np.array([tokens])
    return float(TokenFeatures(space).canonical(t).sum())


def make(space, seed=0, **options):
    latency = lambda batch: np.array([used_sum(space, t) for t in batch])  # noqa: E731
    return GuidedEvolution(space, seed=seed, latency=latency, target_ms=LIMIT,
                           **{"start": 40, "batch": 20, "candidates": 500, **options})


def accuracy(space, tokens) -> float:
    return used_sum(space, tokens) + BONUS * (tokens[0] == len(space.decisions[0].choices) - 1)


def drive(alg, queries: int) -> list[tuple[tuple[int, ...], float]]:
    told = []
    while len(told) < queries:
        batch = []
        while (s := alg.ask()) is not None:
            batch.append(s)
        for s in batch:
            value = accuracy(alg.space, s.tokens)
            told.append((s.tokens, value))
            alg.tell(s.index, value)
    return told


def test_unused_layer_slots_are_left_out_of_the_features_and_of_what_counts_as_new(space):
    f = TokenFeatures(space)
    depth = next(i for i, d in enumerate(space.decisions) if d.name == "stage2.layers")
    slot4 = next(i for i, d in enumerate(space.decisions) if d.name == "stage2.layer4.k")
    a = np.array(space.seed_tokens())
    a[depth] = 0                      # depth 2: slots 3 and 4 unused
    b = a.copy()
    b[slot4] = (a[slot4] + 1) % 3
    assert not f.active(a[None])[0, slot4]
    assert (f(a[None]) == f(b[None])).all() and (f.canonical(a[None]) == f.canonical(b[None])).all()
    b[depth] = 2                      # depth 4: the slot counts again
    assert f.active(b[None])[0, slot4] and not (f(a[None]) == f(b[None])).all()
    assert f(a[None]).sum() == len(f.units) - 2  # one hot per used unit: the resolution, 5 stages, 18 slots


def test_it_proposes_only_networks_under_the_target_and_never_one_twice(space):
    told = drive(make(space), 200)
    assert all(used_sum(space, t) <= LIMIT for t, _ in told)
    assert len({tuple(t) for t, _ in told}) == len(told) == 200


def test_the_model_leads_it_to_the_constrained_best_of_a_linear_oracle(space):
    told = drive(make(space, seed=3), 200)
    best = [max(v for _, v in told[:n]) for n in (40, 200)]
    assert space.decisions[0].name == "resolution"
    assert best[0] < LIMIT + BONUS and best[1] == LIMIT + BONUS  # the random start missed it; the guided part not


def test_thompson_sampling_spreads_the_scores_and_zero_ranks_by_the_mean():
    rng = np.random.default_rng(0)
    x = rng.random((30, 4))
    model = Ridge(x, x @ np.array([1.0, 2.0, 0.0, -1.0]) + 0.1 * rng.standard_normal(30))
    assert np.allclose(model.posterior_draws(3, rng, 0.0), model.w[:, None])
    draws = model.posterior_draws(2000, rng, 1.0)
    assert np.allclose(draws.mean(1), model.w, atol=0.05) and (draws.std(1) > 0).all()


def test_a_seed_repeats_its_run_and_a_restored_search_continues_identically(space):
    reference = drive(make(space, seed=5), 120)
    assert drive(make(space, seed=5), 120) == reference
    first = make(space, seed=5)
    drive(first, 60)
    asked = [first.ask() for _ in range(5)]           # mid-batch
    for s in asked[:2]:
        first.tell(s.index, accuracy(space, s.tokens))
    restored = make(space, seed=77)
    restored.load_state_dict(first.state_dict())
    again = [restored.ask() for _ in range(3)]
    assert [s.tokens for s in again] == [s.tokens for s in asked[2:]]
    for s in again:
        restored.tell(s.index, accuracy(space, s.tokens))
    rest = drive(restored, 55)
    assert [t for t, _ in rest] == [t for t, _ in reference[65:120]]


def test_settings_and_the_constraint_are_checked(space):
    with pytest.raises(UserError, match="searcher"):
        make_algorithm("guided-evolution", space)
    with pytest.raises(UserError, match="batch"):
        make(space, batch=0)
    small = load_space("mobilenetv3_small")
    never = GuidedEvolution(small, latency=lambda batch: np.full(len(batch), 9.0), target_ms=1.0)
    with pytest.raises(UserError, match="target_ms"):
        never.ask()
