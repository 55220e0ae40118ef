"""Cheap-then-expensive: screen with a zero-cost score, train only the candidates that pass.

The MnasNet reward multiplies an accuracy, which a zero-cost score is not; a cascade keeps the
training proxy's accuracy and spends it only where the cheap score says it matters. A candidate
whose cheap score falls below the running (1 - keep) quantile of the cheap scores seen so far is
not trained: its accuracy is the lowest accuracy any trained candidate has had, so the reward
stays on the accuracy scale and still ranks it below the candidates that passed.
"""
from __future__ import annotations

import hashlib
import math
import statistics
from typing import Any, Sequence

import numpy as np

from nas.accuracy.proxy_interface import Proxy
from nas.core.spec import ArchSpec


class Screen:
    """Admit a score when it reaches the (1 - keep) quantile of the scores seen before it."""

    def __init__(self, keep: float = 0.5, warmup: int = 10):
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        self.keep, self.warmup = keep, warmup
        self.seen: list[float] = []

    def admit(self, score: float | None) -> bool:
        if score is None or not math.isfinite(score):
            return False
        before = self.seen
        self.seen = [*before, score]
        return len(before) < self.warmup or score >= float(np.quantile(before, 1 - self.keep))


class CascadeProxy(Proxy):
    """`cheap` screens every candidate; `expensive` (a training proxy) scores those that pass."""

    def __init__(self, cheap: Proxy, expensive: Proxy, keep: float = 0.5, warmup: int = 10):
        self.cheap_proxy, self.expensive = cheap, expensive
        self.name = f"{cheap.name}>{expensive.name}"
        self.cheap = False
        self.screen = Screen(keep, warmup)
        self.trained: list[float] = []

    def floor(self) -> float:
        return min(self.trained) if self.trained else 0.0

    def evaluate(self, spec: ArchSpec) -> dict[str, Any]:
        first = self.cheap_proxy.evaluate(spec)
        if not self.screen.admit(first["score"]):
            accuracy = self.floor()
            return {"proxy": self.name, "score": accuracy, "accuracy": accuracy, "seconds": first["seconds"],
                    "failed": False, "reason": None, "screened": True, "cheap_score": first["score"],
                    "arch_hash": spec.content_hash()}
        result = self.expensive.evaluate(spec)
        if not result["failed"]:
            self.trained.append(result["accuracy"])
        return {**result, "proxy": self.name, "seconds": first["seconds"] + result["seconds"], "screened": False,
                "cheap_score": first["score"]}

    def fingerprint(self) -> str:
        blob = f"{self.cheap_proxy.fingerprint()}>{self.expensive.fingerprint()}:{self.screen.keep}:{self.screen.warmup}"
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def state_dict(self) -> dict[str, Any]:
        """What a resumed search needs to screen as before."""
        return {"seen": list(self.screen.seen), "trained": list(self.trained)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.screen.seen, self.trained = list(state["seen"]), list(state["trained"])


def steady_state(cheap: Sequence[dict[str, Any] | None], expensive: Sequence[dict[str, Any] | None],
                 keep: float = 0.5) -> tuple[list[float], float]:
    """A cascade's scores and mean seconds once its quantile has settled, from both proxies' results.

    The candidates in the bottom (1 - keep) of the cheap scores take the lowest accuracy of the
    others; the rest keep their training accuracy. Seconds: every cheap score plus `keep` of the
    trainings (what a long search pays per candidate).
    """
    cheap_scores = [r.get("score") if r and not r.get("failed") else None for r in cheap]
    finite = [s for s in cheap_scores if s is not None and math.isfinite(s)]
    threshold = float(np.quantile(finite, 1 - keep)) if finite else math.inf
    passed = [s is not None and math.isfinite(s) and s >= threshold for s in cheap_scores]
    accuracies = [r.get("accuracy") or 0.0 if r and not r.get("failed") else 0.0 for r in expensive]
    kept = [a for a, p in zip(accuracies, passed) if p]
    floor = min(kept) if kept else 0.0
    scores = [a if p else floor for a, p in zip(accuracies, passed)]
    cheap_s = [r["seconds"] for r in cheap if r and r.get("seconds") is not None]
    train_s = [r["seconds"] for r in expensive if r and r.get("seconds") is not None]
    seconds = (statistics.median(cheap_s) if cheap_s else 0.0) + keep * (statistics.median(train_s) if train_s else 0.0)
    return scores, seconds
