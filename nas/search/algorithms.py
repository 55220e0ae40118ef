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

from nas.search.controller import Controller, ControllerConfig
from nas.runtime.errors import UserError
from nas.core.space import SearchSpace

# The controller a search uses: MnasNet's PPO with ControllerConfig's paper constants except the
# learning rate, and a batch of 16 (one update per batch). Tuned with
# experiments/benchmarks/rl_vs_random.py (2000 samples, 5 seeds, pixel1, TuNAS reward): at NASNet's
# lr 3.5e-4 the policy is still spread in the last quarter (84% +- 15% of samples within 10% of the
# target at batch 16, 40% at batch 32); at 1e-3 every seed is there (100%) and the best reward
# still beats random search on both spaces; faster (REINFORCE at 1e-2, PPO at >= 1.5e-3 on the
# Small space) converges before it has found a better network than random search's best.
SEARCH_CONTROLLER_CONFIG = ControllerConfig(lr=1e-3)
SEARCH_CONTROLLER_BATCH = 16


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
        if index not in self.outstanding:
            raise ValueError(f"{self.name}: suggestion {index} is not outstanding (told twice, or never asked)")
        tokens = self.outstanding.pop(index)
        self.told += 1
        self._observe(index, tokens, float(reward))

    @property
    def pending_reissue(self) -> int:
        """Suggestions of the last restore that ask() will hand out again before anything new."""
        return sum(1 for i in self.reissue if i in self.outstanding)

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
            raise UserError(f"checkpoint is for the {state['name']!r} searcher, not {self.name!r}",
                            field="searcher")
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
    """Aging evolution (Real et al. 2019): the first `population` suggestions are random; then a
    tournament of `tournament` members of the living population picks a parent, one of its
    decisions is mutated, and the oldest member dies."""

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population: int = 64, tournament: int = 16):
        super().__init__(space, seed)
        if population < 1 or tournament < 1:
            raise UserError(f"population and tournament must be >= 1, got {population} and {tournament}",
                            field="searcher")
        self.rng = np.random.default_rng(seed)
        self.population_size, self.tournament = population, min(tournament, population)
        self.population: deque[tuple[tuple[int, ...], float]] = deque()

    def _propose(self):
        # Counting suggestions, not results, keeps the random start exactly `population` long
        # however many are in flight at once.
        if self.next_index < self.population_size:
            return self.space.sample(self.rng)
        if not self.population:
            return None  # every random start is still out: nothing to mutate yet
        size = min(self.tournament, len(self.population))
        picks = self.rng.choice(len(self.population), size, replace=False)
        # Ties go to the younger member (the later position in the deque).
        parent = max(picks, key=lambda i: (self.population[i][1], i))
        return self.mutate(self.population[parent][0])

    def mutate(self, tokens) -> list[int]:
        """A copy with exactly one decision changed to another of its choices."""
        child = list(tokens)
        d = int(self.rng.integers(len(child)))
        n = self.space.num_choices[d]
        child[d] = (child[d] + 1 + int(self.rng.integers(n - 1))) % n
        return child

    def _observe(self, index, tokens, reward):
        self.population.append((tokens, reward))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def _own_state(self):
        return {"rng": self.rng.bit_generator.state, "population": list(self.population)}

    def _load_own_state(self, state):
        self.rng.bit_generator.state = state["rng"]
        self.population = deque((tuple(t), r) for t, r in state["population"])


class ConstrainedEvolution(Algorithm):
    """once-for-all's evolutionary search, as its tutorial runs it with its accuracy predictor: every
    network it proposes meets the latency constraint (drawn again until it does; latency queries
    are free), and it is told each network's accuracy, not a reward.

    Start: `population` random feasible networks, of which the first `mutation_ratio` share (OFA
    keeps the first 50 of its 100, whatever their accuracy) form the population. Each generation:
    the best `parent_ratio` share are the parents; `mutation_ratio x population` children mutate a
    random parent (the resolution, each layer's kernel and expansion together, each stage's depth,
    each resampled with `mutate_prob`), the rest cross two random parents gene by gene; all of them
    are evaluated, then join the parents. 500 generations cost 100 + 500 x 100 accuracy queries.
    `feasible(tokens)` says whether a network meets the constraint.
    """

    name = "ofa-evolution"
    MAX_DRAWS = 10_000  # a constraint below what the space can reach would draw forever

    def __init__(self, space: SearchSpace, seed: int = 0, feasible: Callable[[list[int]], bool] | None = None,
                 population: int = 100, parent_ratio: float = 0.25, mutation_ratio: float = 0.5,
                 mutate_prob: float = 0.1):
        super().__init__(space, seed)
        if feasible is None:
            raise UserError("needs the latency constraint (a feasible(tokens) test)", field="searcher")
        if population < 2 or not 0 < parent_ratio <= 1 or not 0 <= mutation_ratio <= 1 or not 0 <= mutate_prob <= 1:
            raise UserError(f"bad settings: population {population}, parent_ratio {parent_ratio}, mutation_ratio "
                            f"{mutation_ratio}, mutate_prob {mutate_prob}", field="searcher")
        self.feasible, self.rng = feasible, np.random.default_rng(seed)
        self.population_size, self.mutate_prob = population, mutate_prob
        self.parents_size = max(1, int(round(parent_ratio * population)))
        self.mutations = int(round(mutation_ratio * population))
        # Genes: a per-layer slot's decisions change together (OFA resamples a layer's kernel and
        # expansion as one); every other decision is a gene of its own.
        groups: dict[tuple, list[int]] = {}
        for i, d in enumerate(space.decisions):
            groups.setdefault((d.stage, d.layer) if d.layer is not None else ("decision", i), []).append(i)
        self.genes = list(groups.values())
        self.population: list[tuple[tuple[int, ...], float]] = []
        self.generation: list[tuple[int, ...]] = []   # the batch being evaluated
        self.batch_start, self.issued, self.results = 0, 0, {}
        self.generations = 0

    def _draw(self, make: Callable[[], list[int]]) -> list[int]:
        for _ in range(self.MAX_DRAWS):
            tokens = make()
            if self.feasible(tokens):
                return tokens
        raise UserError(f"no network meeting the latency constraint in {self.MAX_DRAWS} draws: the target is "
                        "below what the space reaches", field="target_ms")

    def _mutate(self, parent: tuple[int, ...]) -> list[int]:
        child = list(parent)
        for gene in self.genes:
            if self.rng.random() < self.mutate_prob:
                for i in gene:
                    child[i] = int(self.rng.integers(self.space.num_choices[i]))
        return child

    def _crossover(self, a: tuple[int, ...], b: tuple[int, ...]) -> list[int]:
        return [x if self.rng.random() < 0.5 else y for x, y in zip(a, b)]

    def _next_generation(self) -> list[tuple[int, ...]]:
        if not self.population and not self.generations:
            return [tuple(self._draw(lambda: self.space.sample(self.rng))) for _ in range(self.population_size)]
        parents = [t for t, _ in sorted(self.population, key=lambda p: -p[1])[:self.parents_size]]
        pick = lambda: parents[int(self.rng.integers(len(parents)))]  # noqa: E731
        children = [tuple(self._draw(lambda: self._mutate(pick()))) for _ in range(self.mutations)]
        children += [tuple(self._draw(lambda: self._crossover(pick(), pick())))
                     for _ in range(self.population_size - self.mutations)]
        return children

    def _propose(self):
        if self.issued == len(self.generation):
            if self.generation and len(self.results) < len(self.generation):
                return None  # wait for the generation's accuracies
            self.generation = self._next_generation()
            self.batch_start, self.issued, self.results = self.next_index, 0, {}
        tokens = self.generation[self.issued]
        self.issued += 1
        return list(tokens)

    def _observe(self, index, tokens, reward):
        self.results[index - self.batch_start] = reward
        if len(self.results) < len(self.generation):
            return
        scored = [(self.generation[i], self.results[i]) for i in range(len(self.generation))]
        if self.generations == 0:  # OFA keeps the first `mutations` random networks, in order
            self.population = scored[:self.mutations]
        else:
            best = sorted(self.population, key=lambda p: -p[1])[:self.parents_size]
            self.population = best + scored
        self.generations += 1

    def _own_state(self):
        return {"rng": self.rng.bit_generator.state, "population": list(self.population),
                "generation": list(self.generation), "batch_start": self.batch_start, "issued": self.issued,
                "results": dict(self.results), "generations": self.generations}

    def _load_own_state(self, state):
        self.rng.bit_generator.state = state["rng"]
        self.population = [(tuple(t), r) for t, r in state["population"]]
        self.generation = [tuple(t) for t in state["generation"]]
        self.batch_start, self.issued = state["batch_start"], state["issued"]
        self.results, self.generations = dict(state["results"]), state["generations"]


class ControllerSearch(Algorithm):
    """MnasNet: sample a batch of M from the LSTM policy, evaluate, then one policy update.

    The batch is synchronous: once its M suggestions are out, ask() returns None until all M are
    told. A member's place in the batch is its sequence number minus the batch's first, so
    results may arrive in any order, and a restore mid-batch re-issues exactly the missing ones.
    """

    name = "controller"

    def __init__(self, space: SearchSpace, seed: int = 0, batch_size: int = SEARCH_CONTROLLER_BATCH,
                 config: ControllerConfig | None = None):
        super().__init__(space, seed)
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}", field="searcher")
        self.batch_size = batch_size
        self.config = config or SEARCH_CONTROLLER_CONFIG
        self.controller = Controller([(d.kind, len(d.choices)) for d in space.decisions], self.config, seed=seed)
        self.batch: list[tuple[int, ...]] = []
        self.batch_log_probs: torch.Tensor | None = None
        self.batch_start = 0             # sequence number of the batch's first member
        self.issued = 0
        self.rewards: dict[int, float] = {}
        self.last_update: dict[str, float] = {}

    def _propose(self):
        if self.issued == len(self.batch):
            if self.batch and len(self.rewards) < len(self.batch):
                return None  # wait for the batch's rewards
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
        if len(self.rewards) == len(self.batch):
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


class TunasSearch(ControllerSearch):
    """TuNAS's controller (REINFORCE, Adam beta1 = 0), continuing from the controller a joint
    supernet training left (`controller_state`, nas/search/joint.py); from scratch without one."""

    name = "tunas"

    def __init__(self, space: SearchSpace, seed: int = 0, batch_size: int = SEARCH_CONTROLLER_BATCH,
                 controller_state: dict[str, Any] | None = None):
        from nas.search.joint import TUNAS_CONTROLLER_CONFIG

        super().__init__(space, seed, batch_size, config=TUNAS_CONTROLLER_CONFIG)
        if controller_state is not None:
            self.controller.load_state_dict(controller_state)


ALGORITHMS: dict[str, type[Algorithm]] = {
    "controller": ControllerSearch, "random": RandomSearch, "evolution": RegularizedEvolution, "tunas": TunasSearch,
    "ofa-evolution": ConstrainedEvolution,
}


def make_algorithm(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Algorithm:
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise UserError(f"unknown searcher {name!r} (one of {', '.join(ALGORITHMS)})", field="searcher") from None
    return cls(space, seed=seed, **options)


def save_state(algorithm: Algorithm, path: str | Path) -> None:
    """Checkpoint written whole or not at all, and on disk before the evaluations it covers."""
    from nas.runtime.files import atomic_write

    state = algorithm.state_dict()
    atomic_write(path, lambda f: pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL))


def load_state(algorithm: Algorithm, path: str | Path) -> None:
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except (EOFError, pickle.UnpicklingError) as err:
        raise UserError(f"unreadable searcher checkpoint ({err})", source=str(path)) from None
    algorithm.load_state_dict(state)


# ---- Ray Tune ---------------------------------------------------------------------------------

def _tune_searcher_class() -> type:
    from ray.tune.search import Searcher

    class TuneSearcher(Searcher):
        """Ray Tune `Searcher` around an Algorithm: suggest() asks, on_trial_complete() tells.

        `on_result(suggestion, last_result_or_None, error) -> reward` scores a finished trial (the
        search driver's: the reward of the trial's accuracy and the latency model's prediction) and
        records it. `extra_config(suggestion)` adds keys to a trial's config (the spec, the proxy);
        `state_path`, when given, receives the algorithm's state after every ask and tell. At most
        `limit` suggestions are told or in flight, counting those told before a restore.

        Tune pickles its searcher into the experiment directory; the callbacks belong to the driving
        process and are left out of that copy.
        """

        def __init__(self, algorithm: Algorithm, on_result: Callable[[Suggestion, dict | None, bool], float],
                     metric: str = "accuracy", mode: str = "max", limit: int | None = None,
                     extra_config: Callable[[Suggestion], dict] | None = None,
                     state_path: str | Path | None = None):
            super().__init__(metric=metric, mode=mode)
            self.algorithm = algorithm
            self.on_result = on_result
            self.extra_config = extra_config
            self.state_path = state_path
            self.limit = limit
            self.trials: dict[str, Suggestion] = {}

        def __getstate__(self) -> dict:
            state = self.__dict__.copy()
            state.update(on_result=None, extra_config=None)
            return state

        def suggest(self, trial_id: str) -> dict | str | None:
            if self.limit is not None and self.algorithm.told + len(self.trials) >= self.limit:
                return Searcher.FINISHED
            s = self.algorithm.ask()
            if s is None:
                return None  # e.g. a controller batch waiting for its rewards: Tune asks again later
            self.trials[trial_id] = s
            config = {"index": s.index, "tokens": list(s.tokens),
                      "arch": self.algorithm.space.decode(s.tokens).to_string()}
            if self.extra_config is not None:
                config.update(self.extra_config(s))
            self._checkpoint()
            return config

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            s = self.trials.pop(trial_id, None)
            if s is None:
                return
            if self.on_result is None:
                raise RuntimeError("TuneSearcher has no on_result callback (restored from Tune's pickle?)")
            reward = self.on_result(s, result, error)
            self.algorithm.tell(s.index, reward)
            self._checkpoint()

        def _checkpoint(self) -> None:
            if self.state_path is not None:
                save_state(self.algorithm, self.state_path)

        def save(self, checkpoint_path: str) -> None:
            save_state(self.algorithm, checkpoint_path)

        def restore(self, checkpoint_path: str) -> None:
            load_state(self.algorithm, checkpoint_path)
            self.trials = {}

    TuneSearcher.__module__, TuneSearcher.__qualname__ = __name__, "TuneSearcher"
    return TuneSearcher


def __getattr__(name: str) -> Any:
    """`TuneSearcher` is built on first use: importing Ray costs seconds that an in-process
    search (and every resume of one) need not pay. Cached, so pickles find the same class."""
    if name == "TuneSearcher":
        cls = globals()["TuneSearcher"] = _tune_searcher_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
