"""once-for-all's evolutionary search, as a searcher (`ofa-evolution`)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from nas.core.space import SearchSpace
from nas.runtime.errors import UserError
from nas.search.ask_tell import SynchronousBatches


class ConstrainedEvolution(SynchronousBatches):
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
        self.generations = 0

    @property
    def generation(self) -> list[tuple[int, ...]]:
        """The generation being evaluated (the batch)."""
        return self.batch

    def _draw(self, make: Callable[[], list[int]]) -> list[int]:
        for _ in range(self.MAX_DRAWS):
            tokens = make()
            if self.feasible(tokens):
                return tokens
        raise UserError(f"no network meeting the latency constraint in {self.MAX_DRAWS} draws: the target is "
                        "below what the space reaches", setting="target_ms")

    def _mutate(self, parent: tuple[int, ...]) -> list[int]:
        child = list(parent)
        for gene in self.genes:
            if self.rng.random() < self.mutate_prob:
                for i in gene:
                    child[i] = int(self.rng.integers(self.space.num_choices[i]))
        return child

    def _crossover(self, a: tuple[int, ...], b: tuple[int, ...]) -> list[int]:
        return [x if self.rng.random() < 0.5 else y for x, y in zip(a, b)]

    def _new_batch(self) -> list[tuple[int, ...]]:
        if not self.population and not self.generations:
            return [tuple(self._draw(lambda: self.space.sample(self.rng))) for _ in range(self.population_size)]
        parents = [t for t, _ in sorted(self.population, key=lambda p: -p[1])[:self.parents_size]]
        pick = lambda: parents[int(self.rng.integers(len(parents)))]  # noqa: E731
        children = [tuple(self._draw(lambda: self._mutate(pick()))) for _ in range(self.mutations)]
        children += [tuple(self._draw(lambda: self._crossover(pick(), pick())))
                     for _ in range(self.population_size - self.mutations)]
        return children

    def _batch_done(self, rewards: list[float]) -> None:
        scored = list(zip(self.batch, rewards))
        if self.generations == 0:  # OFA keeps the first `mutations` random networks, in order
            self.population = scored[:self.mutations]
        else:
            best = sorted(self.population, key=lambda p: -p[1])[:self.parents_size]
            self.population = best + scored
        self.generations += 1

    def _own_state(self):
        return {"rng": self.rng.bit_generator.state, "population": list(self.population),
                "generations": self.generations, **self._batch_state()}

    def _load_own_state(self, state):
        self.rng.bit_generator.state = state["rng"]
        self.population = [(tuple(t), r) for t, r in state["population"]]
        self.generations = state["generations"]
        self._load_batch_state(state)

