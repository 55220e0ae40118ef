"""The one ask/tell interface every searcher implements, and the synchronous batch some share.

Every suggestion carries a sequence number. An algorithm's state remembers the suggestions it has
made but not yet been told about, and re-issues them (same number, same tokens) after a restore:
with the run log keyed by that number, a resumed search neither loses nor repeats an evaluation.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any

from nas.core.space import SearchSpace
from nas.runtime.errors import UserError


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


class SynchronousBatches(Algorithm):
    """Proposes a whole batch, waits for every member's reward, then learns from the batch at once
    (the controller's policy update, an evolution's next generation).

    A member's place in the batch is its sequence number minus the batch's first, so results may
    arrive in any order, and a restore mid-batch re-issues exactly the missing ones.
    """

    def __init__(self, space: SearchSpace, seed: int = 0):
        super().__init__(space, seed)
        self.batch: list[tuple[int, ...]] = []
        self.batch_start = 0             # sequence number of the batch's first member
        self.issued = 0
        self.rewards: dict[int, float] = {}

    @abstractmethod
    def _new_batch(self) -> list[tuple[int, ...]]: ...

    @abstractmethod
    def _batch_done(self, rewards: list[float]) -> None:
        """Every member's reward, in batch order."""

    def _propose(self):
        if self.issued == len(self.batch):
            if self.batch and len(self.rewards) < len(self.batch):
                return None  # wait for the batch's rewards
            self.batch = [tuple(t) for t in self._new_batch()]
            self.batch_start, self.issued, self.rewards = self.next_index, 0, {}
        tokens = self.batch[self.issued]
        self.issued += 1
        return list(tokens)

    def _observe(self, index, tokens, reward):
        self.rewards[index - self.batch_start] = reward
        if len(self.rewards) == len(self.batch):
            self._batch_done([self.rewards[i] for i in range(len(self.batch))])

    def _batch_state(self) -> dict[str, Any]:
        return {"batch": self.batch, "batch_start": self.batch_start, "issued": self.issued,
                "rewards": dict(self.rewards)}

    def _load_batch_state(self, state: dict[str, Any]) -> None:
        self.batch = [tuple(b) for b in state["batch"]]
        self.batch_start, self.issued, self.rewards = state["batch_start"], state["issued"], dict(state["rewards"])
