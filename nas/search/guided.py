"""Evolution guided by a model of the accuracies queried so far (`guided-evolution`).

When an accuracy costs far more than a latency (an ImageNet predictor is still a query; a training
is minutes), the cheap way to spend queries is to ask only for networks that meet the target and
that a model of past answers expects to be good. Each generation:

1. fit a Bayesian linear model (ridge) of accuracy to every accuracy told so far, on the networks'
   choices one-hot, each decision alone and each layer slot's or stage's choices jointly
   (`TokenFeatures`), with unused layer slots left out (a stage of depth 2 does not care what its
   third slot says); the prior keeps the joint terms small until the data ask for them;
2. breed `candidates` networks from the `parents` best so far: every decision resampled with a
   probability of 0.05, 0.1 or 0.2, a quarter of them crossed with another parent;
3. score each candidate under one of `draws` samples of the model's posterior (Thompson
   sampling: where the model is unsure, a candidate sometimes scores high, which keeps the search
   exploring; `thompson` scales the posterior's spread, 0 ranks by the mean alone);
4. walk down that ranking and keep the first `batch` networks that were never asked and meet the
   target. Latency queries are free, but a table walk still costs a fraction of a millisecond, so a
   second linear model, of latency (one per resolution, where the space chooses one, on the joint
   choice of each layer slot or stage: exact for a per-layer table), first moves candidates it
   puts clearly over the target to the end; each kept one is checked exactly.

The first `start` networks are random ones meeting the target. Like OFA's evolution it only
proposes networks that meet the target and is told their accuracy (under the hard reward a
network under the target is rewarded with its accuracy). Close in spirit to predictor-guided
evolution (NPENAS, Wei et al. 2020) and to BANANAS's Thompson sampling (White et al. 2021), with a
linear model because the one-hot ridge fits a space's accuracy well and costs a millisecond.
Chosen and measured with experiments/benchmarks/search_on_groundtruth.py.

The state holds only plain data (tokens, numbers, the generator's state): the models are refitted
from it, so a restored search continues exactly as an uninterrupted one.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from nas.core.space import PER_LAYER_KINDS, RESOLUTION, SearchSpace
from nas.runtime.errors import UserError
from nas.search.ask_tell import SynchronousBatches

MUTATION_RATES = (0.05, 0.1, 0.2)
SCREEN_MARGIN = 0.005  # the latency screen passes candidates it predicts up to 0.5% over the target
SCREEN_KEEP = 2048     # latencies the screen is fitted on (the most recent)


def token_latency(space: SearchSpace, device) -> Callable[[Sequence[Sequence[int]]], np.ndarray]:
    """The latency function a searcher of the target takes: token lists -> predicted ms."""
    return lambda many: np.asarray(device.predict_many([space.decode(t) for t in many]))[:, 0]


class TokenFeatures:
    """A network's choices as one-hot codes of its units, with unused layer slots left out.

    A unit is what shapes one place of the network together: a layer slot's own decisions (a per-
    layer kernel and expansion), or a stage's depth with the choices it makes once for all its
    layers (their cost and effect grow with the depth), or any other decision alone (the
    resolution). Coding each unit's joint choice makes a per-layer latency table exactly linear in
    the features (per resolution). With `joint=False` every decision is a unit of its own: fewer
    features, which a model of a few hundred accuracies fits better.
    """

    def __init__(self, space: SearchSpace, joint: bool = True):
        self.num_choices = np.array(space.num_choices)
        depth_of = {d.stage: i for i, d in enumerate(space.decisions) if d.kind == "layers"}
        units: dict[tuple, list[int]] = {}
        # per decision of a layer slot: (its index, its stage's depth decision or -1, depth per token, slot)
        self.slots = []
        for i, d in enumerate(space.decisions):
            if d.layer is not None:
                stage = space.stages[d.stage]
                j = depth_of.get(d.stage, -1)
                extra = np.array(space.decisions[j].choices if j >= 0 else stage.choices["layers"][:1])
                self.slots.append((i, j, stage.layers + extra, d.layer))
            if not joint:
                key: tuple = ("own", i)
            elif d.layer is not None:
                key = ("slot", d.stage, d.layer)
            elif d.kind in PER_LAYER_KINDS or d.kind == "layers":
                key = ("stage", d.stage)
            else:
                key = ("own", i)
            units.setdefault(key, []).append(i)
        self.units = list(units.values())
        sizes = [int(np.prod(self.num_choices[u])) for u in self.units]
        self.unit_offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        self.width = int(sum(sizes))
        self.resolution = next((i for i, d in enumerate(space.decisions) if d.kind == RESOLUTION), None)

    def active(self, tokens: np.ndarray) -> np.ndarray:
        """(n, D) whether each decision shapes the network."""
        on = np.ones(tokens.shape, dtype=bool)
        for i, j, depths, slot in self.slots:
            depth = depths[tokens[:, j]] if j >= 0 else depths[0]
            on[:, i] = slot < depth
        return on

    def canonical(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens with unused slots set to 0: two token lists of one network become equal."""
        return np.where(self.active(tokens), tokens, 0)

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        n = tokens.shape[0]
        x = np.zeros((n, self.width))
        on = self.active(tokens)
        for unit, offset in zip(self.units, self.unit_offsets):
            code = np.zeros(n, dtype=int)
            for i in unit:
                code = code * self.num_choices[i] + tokens[:, i]
            used = np.flatnonzero(on[:, unit].all(1))
            x[used, offset + code[used]] = 1.0
        return x


class Ridge:
    """Bayesian linear regression with a N(0, sigma^2 / alpha) prior on the weights."""

    def __init__(self, x: np.ndarray, y: np.ndarray, alpha: float = 1.0):
        self.mean_y = float(y.mean())
        a = x.T @ x + alpha * np.eye(x.shape[1])
        self.chol = np.linalg.cholesky(a)
        self.w = np.linalg.solve(a, x.T @ (y - self.mean_y))
        self.sigma = float(np.sqrt(np.mean((x @ self.w + self.mean_y - y) ** 2)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w + self.mean_y

    def posterior_draws(self, k: int, rng: np.random.Generator, scale: float) -> np.ndarray:
        """(F, k) weight vectors from the posterior N(w, sigma^2 A^-1), spread scaled by `scale`."""
        z = rng.standard_normal((self.w.shape[0], k))
        # A = L L^T, so L^-T z has covariance A^-1
        return self.w[:, None] + scale * self.sigma * np.linalg.solve(self.chol.T, z)


class GuidedEvolution(SynchronousBatches):
    """See the module docstring. `latency(list of token lists) -> ms array` and `target_ms` set the
    constraint."""

    name = "guided-evolution"
    MAX_DRAWS = 100_000  # random networks drawn (most screened out unseen) before a target is called too low

    def __init__(self, space: SearchSpace, seed: int = 0,
                 latency: Callable[[Sequence[Sequence[int]]], np.ndarray] | None = None,
                 target_ms: float | None = None, batch: int = 50, start: int = 100, parents: int = 10,
                 candidates: int = 4000, draws: int = 16, thompson: float = 1.0, alpha: float = 1.0):
        super().__init__(space, seed)
        if latency is None or target_ms is None:
            raise UserError("needs the latency constraint (a latency function and target_ms)", field="searcher")
        for field, value, low in (("batch", batch, 1), ("start", start, 2), ("parents", parents, 1),
                                  ("candidates", candidates, 1), ("draws", draws, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"{field} must be an integer >= {low}, got {value!r}", field="searcher")
        if not thompson >= 0 or not alpha > 0:
            raise UserError(f"thompson must be >= 0 and alpha > 0, got {thompson} and {alpha}", field="searcher")
        self.latency, self.target = latency, float(target_ms)
        self.batch_size, self.start, self.parents, self.candidates = batch, start, parents, candidates
        self.draws, self.thompson, self.alpha = draws, float(thompson), float(alpha)
        self.rng = np.random.default_rng(seed)
        self.features = TokenFeatures(space, joint=False)   # decisions alone
        self.cost_features = TokenFeatures(space)           # units jointly: exact for per-layer tables
        self.told_tokens: list[tuple[int, ...]] = []
        self.told_values: list[float] = []
        self.timed: list[tuple[tuple[int, ...], float]] = []   # the latency screen's data
        self.seen: set[tuple[int, ...]] = set()                # canonical tokens ever proposed

    # ---- latency -----------------------------------------------------------------------------
    def _time(self, tokens: np.ndarray) -> np.ndarray:
        ms = np.asarray(self.latency([list(map(int, t)) for t in tokens]), dtype=float).reshape(-1)
        self.timed.extend(zip(map(tuple, tokens.tolist()), ms.tolist()))
        del self.timed[:-SCREEN_KEEP]
        return ms

    def _over(self, children: np.ndarray) -> np.ndarray:
        """Which candidates the latency screen puts clearly over the target: a linear model per
        resolution (a layer's cost grows with the image), fitted to the latencies computed so far."""
        over = np.zeros(len(children), dtype=bool)
        if len(self.timed) < 50:
            return over
        timed = np.array([t for t, _ in self.timed])
        ms = np.array([m for _, m in self.timed])
        r = self.features.resolution
        groups = [(np.ones(len(timed), bool), np.ones(len(children), bool))] if r is None else \
            [(timed[:, r] == v, children[:, r] == v) for v in range(self.features.num_choices[r])]
        for fit_rows, rows in groups:
            if fit_rows.sum() >= 10 and rows.any():
                model = Ridge(self.cost_features(timed[fit_rows]), ms[fit_rows], 1e-3)
                over[rows] = model.predict(self.cost_features(children[rows])) > self.target * (1 + SCREEN_MARGIN)
        return over

    def _random_feasible(self, k: int) -> list[tuple[int, ...]]:
        """k random networks under the target, never proposed before. Under a tight target few random
        networks qualify: once the screen has data, only those it passes are timed."""
        out: list[tuple[int, ...]] = []
        drawn = 0
        while drawn < self.MAX_DRAWS:
            draw = self.features.canonical(self.rng.integers(0, self.features.num_choices, size=(1000, len(
                self.features.num_choices))))
            drawn += len(draw)
            draw = draw[~self._over(draw)]
            for at in range(0, len(draw), 100):
                chunk = [t for t in dict.fromkeys(map(tuple, draw[at:at + 100].tolist())) if t not in self.seen]
                for t, ms in zip(chunk, self._time(np.array(chunk)) if chunk else []):
                    if ms <= self.target:
                        self.seen.add(t)
                        out.append(t)
                        if len(out) == k:
                            return out
        if not out:
            raise UserError(f"no network meeting the latency constraint in {self.MAX_DRAWS} draws: the target "
                            "is below what the space reaches", setting="target_ms")
        return out

    def _acc_features(self, tokens: np.ndarray) -> np.ndarray:
        """Decisions alone fit a few hundred accuracies best; joint units fit the rest (measured with
        experiments/benchmarks/search_on_groundtruth.py: on Accel's space the joint terms find the
        last 0.1-0.2 points, on OFA's the two are equal)."""
        return np.hstack([self.features(tokens), self.cost_features(tokens)])

    # ---- proposals ---------------------------------------------------------------------------
    def _breed(self, parents: np.ndarray) -> np.ndarray:
        m, d = self.candidates, parents.shape[1]
        children = parents[self.rng.integers(len(parents), size=m)].copy()
        rate = self.rng.choice(MUTATION_RATES, size=(m, 1))
        mutate = self.rng.random((m, d)) < rate
        fresh = self.rng.integers(0, self.features.num_choices[None, :].repeat(m, 0))
        children[mutate] = fresh[mutate]
        q = m // 4
        other = parents[self.rng.integers(len(parents), size=q)]
        cross = self.rng.random((q, d)) < 0.5
        children[:q][cross] = other[cross]
        return self.features.canonical(children)

    def _new_batch(self) -> list[tuple[int, ...]]:
        # Matrices of a few hundred columns: one BLAS thread is faster than several, leaves the other
        # cores alone, and sums in one order on every machine (the same seed, the same search).
        with threadpool_limits(limits=1):
            return self._guided_batch()

    def _guided_batch(self) -> list[tuple[int, ...]]:
        if len(self.told_values) < self.start:
            return self._random_feasible(self.start)
        tokens, values = np.array(self.told_tokens), np.array(self.told_values)
        model = Ridge(self._acc_features(tokens), values, self.alpha)
        parents = tokens[np.argsort(-values, kind="stable")[:self.parents]]
        children = self._breed(parents)
        x = self._acc_features(children)
        if self.thompson > 0:
            w = model.posterior_draws(self.draws, self.rng, self.thompson)
            score = np.einsum("nf,nf->n", x, w.T[self.rng.integers(self.draws, size=len(x))]) + model.mean_y
        else:
            score = model.predict(x)
        order = np.argsort(-score, kind="stable")
        over = self._over(children)  # candidates the screen puts clearly over the target go last
        order = np.concatenate([order[~over[order]], order[over[order]]])
        rows = [tuple(r) for r in children.tolist()]  # plain ints: they go into the checkpoint
        batch: list[tuple[int, ...]] = []
        for at in range(0, len(order), self.batch_size):
            chunk = list(dict.fromkeys(rows[i] for i in order[at:at + self.batch_size] if rows[i] not in self.seen))
            if not chunk:
                continue
            for t, ms in zip(chunk, self._time(np.array(chunk))):
                if ms <= self.target:
                    self.seen.add(t)
                    batch.append(t)
                    if len(batch) == self.batch_size:
                        return batch
        return batch + self._random_feasible(self.batch_size - len(batch))

    def _batch_done(self, rewards: list[float]) -> None:
        self.told_tokens.extend(self.batch)
        self.told_values.extend(float(r) for r in rewards)

    # ---- state -------------------------------------------------------------------------------
    def _own_state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "told_tokens": [list(t) for t in self.told_tokens],
                "told_values": list(self.told_values), "timed": [[list(t), m] for t, m in self.timed],
                "seen": sorted(list(t) for t in self.seen), **self._batch_state()}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.told_tokens = [tuple(t) for t in state["told_tokens"]]
        self.told_values = [float(v) for v in state["told_values"]]
        self.timed = [(tuple(t), float(m)) for t, m in state["timed"]]
        self.seen = {tuple(t) for t in state["seen"]}
        self._load_batch_state(state)
