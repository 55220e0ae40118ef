"""Search algorithms behind one narrow ask/tell interface (`nas.search.ask_tell`), their registry, their
checkpoints, and a Ray Tune `Searcher` around them.

Torch-free on import, so that the names register (and a command lists them) before torch loads: the
controller searches and the checkpoints import it when they run."""
from __future__ import annotations

import hashlib
import io
import os
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from nas.search.ask_tell import Algorithm, Suggestion, SynchronousBatches  # noqa: F401 - Suggestion re-exported
from nas.search.guided import GuidedEvolution
from nas.search.ofa_evolution import ConstrainedEvolution
from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write, atomic_write_bytes, open_no_follow, unreadable
from nas.runtime.registry import ALGORITHMS
from nas.core.space import SearchSpace

if TYPE_CHECKING:
    import torch

    from nas.search.controller import ControllerConfig

SEARCH_CONTROLLER_BATCH = 16


def search_controller_config() -> ControllerConfig:
    """The controller a search uses: MnasNet's PPO with ControllerConfig's paper constants except the
    learning rate, and a batch of 16 (one update per batch). Tuned with
    experiments/benchmarks/rl_vs_random.py (2000 samples, 5 seeds, pixel1, TuNAS reward): at NASNet's
    lr 3.5e-4 the policy is still spread in the last quarter (84% +- 15% of samples within 10% of the
    target at batch 16, 40% at batch 32); at 1e-3 every seed is there (100%) and the best reward
    still beats random search on both spaces; faster (REINFORCE at 1e-2, PPO at >= 1.5e-3 on the
    Small space) converges before it has found a better network than random search's best."""
    from nas.search.controller import ControllerConfig  # deferred: torch (see the module's docstring)

    return ControllerConfig(lr=1e-3)


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


class ControllerSearch(SynchronousBatches):
    """MnasNet: sample a batch of M from the LSTM policy, evaluate, then one policy update.

    The batch is synchronous (`SynchronousBatches`): once its M suggestions are out, ask() returns
    None until all M are told.
    """

    name = "controller"

    def __init__(self, space: SearchSpace, seed: int = 0, batch_size: int = SEARCH_CONTROLLER_BATCH,
                 config: ControllerConfig | None = None):
        super().__init__(space, seed)
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}", field="searcher")
        from nas.search.controller import Controller  # deferred: torch (see the module's docstring)

        self.batch_size = batch_size
        self.config = config or search_controller_config()
        self.controller = Controller([(d.kind, len(d.choices)) for d in space.decisions], self.config, seed=seed)
        self.batch_log_probs: torch.Tensor | None = None
        self.last_update: dict[str, float] = {}

    def _new_batch(self):
        import torch  # deferred: torch (see the module's docstring)

        with torch.no_grad():
            sample = self.controller.sample(self.batch_size)
        self.batch_log_probs = sample.log_probs
        return sample.tokens.tolist()

    def _batch_done(self, rewards):
        self.last_update = self.controller.update(self.batch, rewards, self.batch_log_probs)

    def _own_state(self):
        return {"controller": self.controller.state_dict(), "batch_log_probs": self.batch_log_probs,
                "last_update": self.last_update, **self._batch_state()}

    def _load_own_state(self, state):
        self.controller.load_state_dict(state["controller"])
        self.batch_log_probs, self.last_update = state["batch_log_probs"], state["last_update"]
        self._load_batch_state(state)


class TunasSearch(ControllerSearch):
    """TuNAS's controller (REINFORCE, Adam beta1 = 0), continuing from the controller a joint
    supernet training left (`controller_state`, nas/search/joint.py); from scratch without one."""

    name = "tunas"

    def __init__(self, space: SearchSpace, seed: int = 0, batch_size: int = SEARCH_CONTROLLER_BATCH,
                 controller_state: dict[str, Any] | None = None):
        from nas.search.joint import TUNAS_CONTROLLER_CONFIG  # deferred: torch (see the module's docstring)

        super().__init__(space, seed, batch_size, config=TUNAS_CONTROLLER_CONFIG)
        if controller_state is not None:
            self.controller.load_state_dict(controller_state)


for _cls, _name, _help, _meta in (
        (GuidedEvolution, "guided-evolution", "evolution guided by a Bayesian model of the accuracies so far, "
         "proposing only networks under the target (the default)", {"target_only": True}),
        (ControllerSearch, "controller", "MnasNet's LSTM controller trained with PPO", {}),
        (RandomSearch, "random", "uniform samples of the space", {}),
        (RegularizedEvolution, "evolution", "regularized (aging) evolution", {}),
        (ConstrainedEvolution, "ofa-evolution", "once-for-all's evolution under the latency constraint",
         {"target_only": True}),
        (TunasSearch, "tunas", "TuNAS: the supernet and the controller trained together (implies --proxy supernet)",
         {"trains_supernet": True})):
    ALGORITHMS.register(_name, _cls, help=_help, **_meta)


def make_algorithm(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Algorithm:
    return ALGORITHMS.lookup(name)(space, seed=seed, **options)


CHECKPOINT_MAGIC = b"nas searcher checkpoint\n"
CHECKPOINT_FORMAT = 1


def save_state(algorithm: Algorithm, path: str | Path, keep_previous: bool = True) -> None:
    """Checkpoint written whole or not at all, and on disk before the evaluations it covers.

    Data only: tensors and plain containers (torch.save), read back with weights_only=True, so a
    checkpoint from elsewhere cannot run code; a SHA-256 of the payload catches a torn or flipped
    file, which is then refused by name rather than loaded with wrong values. With `keep_previous`
    the checkpoint it replaces stays beside it as PATH.prev (a hard link, so no copy is written; a
    copy where the file system has none): a damaged checkpoint then costs one save, not the run."""
    import torch  # deferred: torch (see the module's docstring)

    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "state": algorithm.state_dict()}, buffer)
    payload = buffer.getvalue()
    header = CHECKPOINT_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    p = Path(path)
    if keep_previous and p.is_file() and not p.is_symlink():
        previous, link = p.with_name(p.name + ".prev"), p.with_name(f".{p.name}.prev.tmp{os.getpid()}")
        try:  # link, then rename over PATH.prev: never a moment without a whole PATH.prev
            link.unlink(missing_ok=True)
            os.link(p, link)
            os.replace(link, previous)
        except OSError:
            link.unlink(missing_ok=True)
            atomic_write_bytes(previous, p.read_bytes())
    atomic_write(p, lambda f: f.write(header + payload))


def load_state(algorithm: Algorithm, path: str | Path) -> None:
    algorithm.load_state_dict(read_state(path))


def read_state(path: str | Path, advice: str | None = "start a new run with another --out") -> dict[str, Any]:
    """A checkpoint's algorithm state (see save_state), or one error naming the file and ending in
    `advice` (None: the caller adds its own). A symbolic link is refused, not followed."""
    import torch  # deferred: torch (see the module's docstring)

    def bad(why: str) -> UserError:
        return UserError(f"{why}; {advice}" if advice else why, source=str(path), field="searcher")

    try:
        with os.fdopen(open_no_follow(path, os.O_RDONLY), "rb") as f:
            data = f.read()
    except OSError as err:
        raise bad(unreadable(err, "a searcher checkpoint")) from None
    if not data.startswith(CHECKPOINT_MAGIC):
        raise bad("not a searcher checkpoint of this version")
    digest, payload = data[len(CHECKPOINT_MAGIC):len(CHECKPOINT_MAGIC) + 64], data[len(CHECKPOINT_MAGIC) + 65:]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise bad("corrupt searcher checkpoint (its checksum does not match)")
    try:
        saved = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - weights_only refuses anything but data, with its own error types
        raise bad(f"unreadable searcher checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise bad(f"unknown searcher checkpoint format {saved.get('format') if isinstance(saved, dict) else None!r}")
    return saved["state"]


# ---- Ray Tune ---------------------------------------------------------------------------------

def _tune_searcher_class() -> type:
    from ray.tune.search import Searcher  # deferred: Ray costs seconds (the module's __getattr__)

    class TuneSearcher(Searcher):
        """Ray Tune `Searcher` around an Algorithm: suggest() asks, on_trial_complete() tells.

        `on_result(suggestion, last_result_or_None, error) -> reward` scores a finished trial (the
        search driver's: the reward of the trial's accuracy and the latency model's prediction) and
        records it. `extra_config(suggestion)` adds keys to a trial's config (the spec, the proxy);
        `state_path`, when given, receives the algorithm's state after every ask and tell. At most
        `limit` suggestions are told or in flight, counting those told before a restore.

        Tune pickles its searcher into the experiment directory (a copy this project never reads back:
        a resumed search restores from its own checkpoint); the callbacks belong to the driving
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
