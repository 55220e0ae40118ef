"""Search algorithms behind one narrow ask/tell interface, and a Ray Tune `Searcher` around them.

Every suggestion carries a sequence number. An algorithm's state remembers the suggestions it has
made but not yet been told about, and re-issues them (same number, same tokens) after a restore:
with the run log keyed by that number, a resumed search neither loses nor repeats an evaluation.
"""
from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nas.controller import Controller, ControllerConfig
from nas.space import SearchSpace

try:  # Ray is a dependency, but the algorithms themselves do not need it.
    from ray.tune.search import Searcher as _TuneSearcher
except ImportError:  # pragma: no cover
    _TuneSearcher = object


@dataclass(frozen=True)
class Suggestion:
    index: int
    tokens: tuple[int, ...]


class Algorithm(ABC):
    """ask() -> Suggestion, or None while it waits for results; tell(index, reward)."""

    name = "algorithm"

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.seed = seed
        self.next_index = 0
        self.outstanding: dict[int, tuple[int, ...]] = {}   # asked, not yet told
        self.reissue: deque[int] = deque()                  # outstanding at the last restore
        self.told = 0

    def ask(self) -> Suggestion | None:
        while self.reissue:
            i = self.reissue.popleft()
            if i in self.outstanding:
                return Suggestion(i, self.outstanding[i])
        tokens = self._propose()
        if tokens is None:
            return None
        s = Suggestion(self.next_index, tuple(int(t) for t in tokens))
        self.next_index += 1
        self.outstanding[s.index] = s.tokens
        return s

    def tell(self, index: int, reward: float) -> None:
        tokens = self.outstanding.pop(index)
        self.told += 1
        self._observe(index, tokens, float(reward))

    @abstractmethod
    def _propose(self) -> list[int] | None: ...

    @abstractmethod
    def _observe(self, index: int, tokens: tuple[int, ...], reward: float) -> None: ...

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "next_index": self.next_index, "outstanding": dict(self.outstanding),
                "told": self.told, "own": self._own_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["name"] != self.name:
            raise ValueError(f"checkpoint is for {state['name']!r}, not {self.name!r}")
        self.next_index, self.told = state["next_index"], state["told"]
        self.outstanding = dict(state["outstanding"])
        self.reissue = deque(sorted(self.outstanding))
        self._load_own_state(state["own"])

    @abstractmethod
    def _own_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _load_own_state(self, state: dict[str, Any]) -> None: ...


class RandomSearch(Algorithm):
    """Uniform over the space: the baseline a well-tuned search must beat (TuNAS)."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0):
        super().__init__(space, seed)
        self.rng = np.random.default_rng(seed)

    def _propose(self):
        return self.space.sample(self.rng)

    def _observe(self, index, tokens, reward):
        pass

    def _own_state(self):
        return {"rng": self.rng.bit_generator.state}

    def _load_own_state(self, state):
        self.rng.bit_generator.state = state["rng"]


class RegularizedEvolution(Algorithm):
    """Aging evolution (Real et al. 2019): tournament on the living population, mutate one decision,
    and the oldest member dies."""

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population: int = 64, tournament: int = 16):
        super().__init__(space, seed)
        self.rng = np.random.default_rng(seed)
        self.population_size, self.tournament = population, min(tournament, population)
        self.population: deque[tuple[tuple[int, ...], float]] = deque()

    def _propose(self):
        if len(self.population) < self.population_size:
            return self.space.sample(self.rng)
        picks = self.rng.choice(len(self.population), self.tournament, replace=False)
        parent = max((self.population[i] for i in picks), key=lambda m: m[1])[0]
        child = list(parent)
        d = int(self.rng.integers(len(child)))
        n = self.space.num_choices[d]
        child[d] = (child[d] + 1 + int(self.rng.integers(n - 1))) % n  # always a different choice
        return child

    def _observe(self, index, tokens, reward):
        self.population.append((tokens, reward))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def _own_state(self):
        return {"rng": self.rng.bit_generator.state, "population": list(self.population)}

    def _load_own_state(self, state):
        self.rng.bit_generator.state = state["rng"]
        self.population = deque(state["population"])


class ControllerSearch(Algorithm):
    """MnasNet: sample a batch of M from the LSTM policy, evaluate, then one PPO update."""

    name = "controller"

    def __init__(self, space: SearchSpace, seed: int = 0, batch_size: int = 16,
                 config: ControllerConfig | None = None):
        super().__init__(space, seed)
        self.batch_size = batch_size
        self.controller = Controller([(d.kind, len(d.choices)) for d in space.decisions], config, seed=seed)
        self.batch: list[tuple[int, ...]] = []
        self.batch_log_probs: torch.Tensor | None = None
        self.batch_start = 0             # sequence number of the batch's first member
        self.issued = 0
        self.rewards: dict[int, float] = {}
        self.last_update: dict[str, float] = {}

    def _propose(self):
        if self.issued == len(self.batch):
            if self.batch and len(self.rewards) < len(self.batch):
                return None  # the PPO batch is synchronous: wait for its rewards
            with torch.no_grad():
                sample = self.controller.sample(self.batch_size)
            self.batch = [tuple(t) for t in sample.tokens.tolist()]
            self.batch_log_probs = sample.log_probs
            self.batch_start, self.issued, self.rewards = self.next_index, 0, {}
        tokens = self.batch[self.issued]
        self.issued += 1
        return list(tokens)

    def _observe(self, index, tokens, reward):
        self.rewards[index - self.batch_start] = reward
        if len(self.rewards) == len(self.batch) and self.issued == len(self.batch):
            rewards = [self.rewards[i] for i in range(len(self.batch))]
            self.last_update = self.controller.update(self.batch, rewards, self.batch_log_probs)

    def _own_state(self):
        return {"controller": self.controller.state_dict(), "batch": self.batch,
                "batch_log_probs": self.batch_log_probs, "batch_start": self.batch_start, "issued": self.issued,
                "rewards": dict(self.rewards), "last_update": self.last_update}

    def _load_own_state(self, state):
        self.controller.load_state_dict(state["controller"])
        self.batch, self.batch_log_probs = [tuple(b) for b in state["batch"]], state["batch_log_probs"]
        self.batch_start, self.issued = state["batch_start"], state["issued"]
        self.rewards, self.last_update = dict(state["rewards"]), state["last_update"]


ALGORITHMS: dict[str, type[Algorithm]] = {
    "controller": ControllerSearch, "random": RandomSearch, "evolution": RegularizedEvolution,
}


def make_algorithm(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Algorithm:
    return ALGORITHMS[name](space, seed=seed, **options)


def save_state(algorithm: Algorithm, path: str | Path) -> None:
    """Checkpoint written whole or not at all."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(algorithm.state_dict(), f)
    tmp.replace(path)


def load_state(algorithm: Algorithm, path: str | Path) -> None:
    with open(path, "rb") as f:
        algorithm.load_state_dict(pickle.load(f))


# ---- Ray Tune ---------------------------------------------------------------------------------

class TuneSearcher(_TuneSearcher):
    """Ray Tune `Searcher` around an Algorithm: suggest() asks, on_trial_complete() scores the trial
    (the trial's accuracy with the latency model's prediction, through the reward) and tells.

    `on_result(suggestion, trial_result_or_None, error)` returns the reward and records the sample;
    the search driver provides it (it owns the run log and the latency device).
    """

    def __init__(self, algorithm: Algorithm, on_result: Callable[[Suggestion, dict | None, bool], float],
                 metric: str = "accuracy", mode: str = "max", limit: int | None = None):
        super().__init__(metric=metric, mode=mode)
        self.algorithm = algorithm
        self.on_result = on_result
        self.limit = limit
        self.trials: dict[str, Suggestion] = {}

    def suggest(self, trial_id: str) -> dict | None:
        if self.limit is not None and self.algorithm.told + len(self.trials) >= self.limit:
            return None
        s = self.algorithm.ask()
        if s is None:
            return None
        self.trials[trial_id] = s
        spec = self.algorithm.space.decode(s.tokens)
        return {"index": s.index, "tokens": list(s.tokens), "arch": spec.to_string()}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        s = self.trials.pop(trial_id, None)
        if s is None:
            return
        reward = self.on_result(s, result, error)
        self.algorithm.tell(s.index, reward)

    def save(self, checkpoint_path: str) -> None:
        save_state(self.algorithm, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        load_state(self.algorithm, checkpoint_path)
