"""The searchers' decisions, pinned on scripted rewards: who leaves evolution's population, which
member a tournament picks, what random search proposes, and what the controller learns from."""
import numpy as np
import pytest
import torch

from nas.core.space import load_space
from nas.search.algorithms import ControllerSearch, RandomSearch, RegularizedEvolution


@pytest.fixture(scope="module")
def small():
    return load_space("mobilenetv3_small")


def distance(a, b) -> int:
    return sum(x != y for x, y in zip(a, b))


def parent_of(child, members):
    """The one member the child is a one-decision mutation of (members are far apart, so it is unique)."""
    assert min(distance(a, b) for i, a in enumerate(members) for b in members[i + 1:]) >= 3
    parents = [i for i, m in enumerate(members) if distance(child, m) == 1]
    assert len(parents) == 1, parents
    return parents[0]


def test_evolution_removes_the_oldest_member_not_the_worst(small):
    evo = RegularizedEvolution(small, seed=0, population=3, tournament=3)
    first = [evo.ask() for _ in range(3)]
    for s, reward in zip(first, (0.9, 0.1, 0.5)):  # the oldest is the best, the worst is in the middle
        evo.tell(s.index, reward)
    child = evo.ask()
    evo.tell(child.index, 0.3)
    assert [r for _, r in evo.population] == [0.1, 0.5, 0.3]
    assert [t for t, _ in evo.population] == [first[1].tokens, first[2].tokens, child.tokens]
    # Age is time in the population: results told out of order die in the order they arrived.
    evo = RegularizedEvolution(small, seed=1, population=3, tournament=3)
    first = [evo.ask() for _ in range(3)]
    for i, reward in ((2, 0.9), (0, 0.1), (1, 0.5)):
        evo.tell(first[i].index, reward)
    evo.tell(evo.ask().index, 0.0)
    assert [t for t, _ in evo.population][:2] == [first[0].tokens, first[1].tokens]  # first[2] left


class ScriptedPicks:
    """The evolution's rng with the tournament's sample given: `choice` returns the next script entry."""

    def __init__(self, rng, picks):
        self.rng, self.picks = rng, list(picks)

    def choice(self, n, size, replace):
        assert not replace and size == len(self.picks[0])
        return np.array(self.picks.pop(0))

    def integers(self, *args):
        return self.rng.integers(*args)


@pytest.mark.parametrize("picks,parent", [
    ([0, 2, 5], 2),   # rewards 0.2, 0.4, 0.1: the best of the sample, not of the population (3)
    ([5, 1, 4], 4),   # 0.1, 0.8, 0.8: a tie goes to the younger member
    ([3, 0, 1], 3),
])
def test_tournament_parent_is_the_best_of_its_sample(small, picks, parent):
    evo = RegularizedEvolution(small, seed=0, population=6, tournament=3)
    members = [evo.ask() for _ in range(6)]
    for s, reward in zip(members, (0.2, 0.8, 0.4, 0.9, 0.8, 0.1)):
        evo.tell(s.index, reward)
    evo.rng = ScriptedPicks(evo.rng, [picks])
    child = evo.ask()
    assert parent_of(child.tokens, [s.tokens for s in members]) == parent


def test_random_proposals_are_valid_and_reproducible_from_the_seed(small):
    a, b = RandomSearch(small, seed=7), RandomSearch(small, seed=7)
    asked = []
    for k in range(40):
        s = a.ask()
        asked.append(s)
        a.tell(s.index, float(k % 3))  # rewards do not steer it
    rng = np.random.default_rng(7)
    assert [s.tokens for s in asked] == [tuple(small.sample(rng)) for _ in range(40)]
    assert [s.tokens for s in asked] == [b.ask().tokens for _ in range(40)]
    assert [s.index for s in asked] == list(range(40))
    assert len({s.tokens for s in asked}) == 40
    for s in asked:
        assert all(0 <= t < n for t, n in zip(s.tokens, small.num_choices)) and len(s.tokens) == len(small.num_choices)
        spec = small.decode(s.tokens)
        assert len(spec.blocks) >= len(small.stages)
    assert [s.tokens for s in asked] != [RandomSearch(small, seed=8).ask().tokens for _ in range(40)]


def test_controller_updates_once_per_batch_with_rewards_in_suggestion_order(small, monkeypatch):
    c = ControllerSearch(small, seed=0, batch_size=4)
    calls = []
    monkeypatch.setattr(c.controller, "update", lambda tokens, rewards, old: calls.append((tokens, rewards, old)) or {})
    batch = [c.ask() for _ in range(4)]
    sampled_log_probs = c.batch_log_probs
    assert c.ask() is None  # synchronous: nothing new until the whole batch is told
    for i in (3, 1, 0):
        c.tell(batch[i].index, i / 10)
        assert not calls and c.ask() is None
    c.tell(batch[2].index, 0.2)
    assert len(calls) == 1
    tokens, rewards, old = calls[0]
    assert tokens == [s.tokens for s in batch] and rewards == [0.0, 0.1, 0.2, 0.3]
    assert old is sampled_log_probs  # the ratio is taken against the policy that sampled the batch
    expected = c.controller.log_prob(torch.tensor(tokens))[0]
    assert torch.allclose(old, expected.detach(), atol=1e-5)
    nxt = c.ask()
    assert nxt.index == 4 and c.batch_start == 4
