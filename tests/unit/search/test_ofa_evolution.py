"""OFA's constrained evolution (`ofa-evolution`), pinned on a tiny deterministic oracle."""
from __future__ import annotations

import pytest

from nas.core.space import load_space
from nas.groundtruth.ofa import ofa_space
from nas.runtime.errors import UserError
from nas.search.algorithms import ConstrainedEvolution, make_algorithm

LIMIT = 40  # feasible: the token sum at most LIMIT (a latency); accuracy: the token sum (bigger is better)


def oracle(tokens) -> float:
    return float(sum(tokens))


def feasible(tokens) -> bool:
    return sum(tokens) <= LIMIT


def drive(alg, queries: int) -> list[tuple[int, ...]]:
    asked = []
    while len(asked) < queries:
        batch = []
        while (s := alg.ask()) is not None:
            batch.append(s)
        for s in batch:
            asked.append(s.tokens)
            alg.tell(s.index, oracle(s.tokens))
    return asked


def test_it_proposes_only_feasible_networks_generation_by_generation():
    space = ofa_space()
    alg = make_algorithm("ofa-evolution", space, seed=0, feasible=feasible)
    assert alg.ask() is not None
    for _ in range(99):
        alg.ask()
    assert alg.ask() is None  # the first generation (100) waits for its accuracies
    alg.reissue.clear()
    for i in range(100):
        alg.tell(i, oracle(alg.outstanding[i]))
    assert [t for t, _ in alg.population] == [tuple(alg.generation[i]) for i in range(50)]  # OFA keeps the first 50
    asked = drive(alg, 3 * 100)
    assert all(feasible(t) for t in asked) and alg.generations == 4


def test_parents_are_the_best_and_the_best_so_far_never_gets_worse():
    alg = ConstrainedEvolution(ofa_space(), seed=1, feasible=feasible)
    drive(alg, 100)
    best = []
    for _ in range(10):
        drive(alg, 100)
        best.append(max(r for _, r in alg.population))
    assert best == sorted(best) and best[-1] == LIMIT  # it reaches the constraint's best
    assert len(alg.population) == 25 + 100


def test_a_layers_kernel_and_expansion_mutate_together_and_a_seed_repeats_its_run():
    space = ofa_space()
    alg = ConstrainedEvolution(space, seed=0, feasible=feasible)
    names = [[space.decisions[i].name for i in gene] for gene in alg.genes]
    assert ["stage2.layer1.k", "stage2.layer1.exp"] in names and ["resolution"] in names and len(names) == 26
    again = ConstrainedEvolution(space, seed=0, feasible=feasible)
    assert drive(alg, 300) == drive(again, 300)


def test_a_restored_search_reissues_the_generation_it_was_waiting_for():
    space = ofa_space()
    alg = ConstrainedEvolution(space, seed=2, feasible=feasible)
    drive(alg, 100)
    first = [alg.ask() for _ in range(30)]
    for s in first[:10]:
        alg.tell(s.index, oracle(s.tokens))
    restored = ConstrainedEvolution(space, seed=99, feasible=feasible)
    restored.load_state_dict(alg.state_dict())
    again = [restored.ask() for _ in range(20)]
    assert [s.index for s in again] == [s.index for s in first[10:]]
    assert [s.tokens for s in again] == [s.tokens for s in first[10:]]


def test_an_unreachable_constraint_and_a_missing_one_are_refused():
    space = load_space("mobilenetv3_small")
    with pytest.raises(UserError, match="target_ms"):
        ConstrainedEvolution(space, seed=0, feasible=lambda t: False).ask()
    with pytest.raises(UserError, match="searcher"):
        make_algorithm("ofa-evolution", space)
