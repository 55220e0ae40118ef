"""One iteration's proposals: per knob, the widest width that cuts the required latency, and their scores."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from nas.core.spec import ArchSpec
from nas.netadapt.surgery import Knob, candidate_widths, structure
from nas.runtime.stats import standard_error


@dataclass
class Proposal:
    knob: Knob
    before: int
    width: int
    spec: ArchSpec
    latency_ms: float

    def summary(self) -> dict[str, Any]:
        return {"knob": self.knob.label, "from": self.before, "to": self.width,
                "latency_ms": round(self.latency_ms, 6)}


def predict_ms(device, specs: Sequence[ArchSpec]) -> np.ndarray:
    return np.asarray(device.predict_many(list(specs)), dtype=float).reshape(len(specs), 3)[:, 0]


def _widest_cut(spec: ArchSpec, knob: Knob, floor: int, device, current_ms: float,
                required_ms: float) -> tuple[Proposal | None, Proposal | None]:
    """(widest width cutting `required_ms`, or None; the largest cut seen, for the fallback).

    Widths are predicted in chunks of 1, 2, 4, ... from the widest down, so a measured device (the
    host) measures few new ops, and an analytic one answers in a few batched calls.
    """
    shape = structure(spec)
    before = knob.width(spec)
    options = [(w, s) for w in candidate_widths(before, floor) if structure(s := knob.apply(spec, w)) == shape]
    start, size, largest = 0, 1, None
    while start < len(options):
        chunk = options[start:start + size]
        for (w, s), ms in zip(chunk, predict_ms(device, [s for _, s in chunk])):
            p = Proposal(knob, before, w, s, float(ms))
            # The tolerance forgives rounding in the cut, but a width must cut something: a hair above
            # the target, every width "cuts" required - 1e-12 < 0, and some (a flat device) cut nothing.
            if current_ms - ms >= required_ms - 1e-12 and ms < current_ms:
                return p, p
            if largest is None or ms < largest.latency_ms:
                largest = p
        start, size = start + size, size * 2
    return None, largest


def make_proposals(spec: ArchSpec, knobs: Sequence[Knob], floors: Mapping[Knob, int], device,
                   current_ms: float, required_ms: float) -> tuple[list[Proposal], bool]:
    """One proposal per knob that can cut `required_ms`; (proposals, whether the fallback was used).

    When no knob can cut that much alone (near the floor), every knob's largest positive cut is
    proposed instead, so latency keeps falling until the floor.
    """
    found, fallback = [], []
    for knob in knobs:
        p, largest = _widest_cut(spec, knob, floors[knob], device, current_ms, required_ms)
        if p is not None:
            found.append(p)
        elif largest is not None and largest.latency_ms < current_ms:
            fallback.append(largest)
    return (found, False) if found else (fallback, True)


TIE_SE = 1.0  # accuracies within this many standard errors of the best one are tied (`--select noise-aware`)


def _valid(outcome: dict) -> bool:
    return not outcome["failed"] and math.isfinite(outcome["accuracy"])


def proposal_score(proposal: Proposal, outcome: dict, current_acc: float, current_ms: float, rule: str) -> float:
    """Higher is better: dAcc / |dLat| ("ratio", MobileNetV3), the accuracy itself ("accuracy", the original
    NetAdapt; "noise-aware" ranks by it too, then breaks ties by latency in `choose`) or the latency cut
    ("latency": the proposal that saves most, accuracy unseen)."""
    if not _valid(outcome):
        return -math.inf
    if rule in ("accuracy", "noise-aware"):
        return outcome["accuracy"]
    if rule == "latency":
        return current_ms - proposal.latency_ms
    return (outcome["accuracy"] - current_acc) / max(current_ms - proposal.latency_ms, 1e-9)


def tied(outcomes: Sequence[dict], n: int, tie_se: float = TIE_SE) -> tuple[list[int], float, float]:
    """(indices of the valid outcomes whose accuracy is within `tie_se` standard errors of the best one,
    the best accuracy, that standard error), the error taken at the best accuracy on `n` images. The best
    is always among them; more than one means the measurement cannot tell them apart."""
    ok = [i for i, o in enumerate(outcomes) if _valid(o)]
    if not ok:
        return [], math.nan, math.nan
    best = max(outcomes[i]["accuracy"] for i in ok)
    se = standard_error(best, n)
    # Accuracies are counts / n, so 1e-12 only absorbs float rounding at the boundary.
    return [i for i in ok if outcomes[i]["accuracy"] >= best - tie_se * se - 1e-12], best, se


def choose(proposals: Sequence[Proposal], outcomes: Sequence[dict], rule: str, n: int,
           tie_se: float = TIE_SE) -> tuple[int, dict[str, Any]]:
    """(index of the winner, or -1 when every outcome failed; the noise record of the choice).

    Outcomes carry their "score" (`proposal_score`). "noise-aware": among the proposals tied with the
    most accurate one (`tied`), the one that cuts most latency (then the more accurate, then the first);
    a proposal more than `tie_se` standard errors ahead wins alone. Every other rule: the highest score,
    ties to the first proposal. The record holds everything the choice used, for the log.
    """
    among, best_acc, se = tied(outcomes, n, tie_se)
    if not among:
        return -1, {"n_val": n, "accuracy": None, "se": None, "tie_se": tie_se, "tied": []}
    if rule == "noise-aware":
        winner = min(among, key=lambda i: (proposals[i].latency_ms, -outcomes[i]["accuracy"], i))
    else:
        winner, best_score = -1, -math.inf
        for i, o in enumerate(outcomes):
            if o["score"] > best_score:  # strict: ties go to the first proposal
                winner, best_score = i, o["score"]
    return winner, {"n_val": n, "accuracy": best_acc, "se": se, "tie_se": tie_se,
                    "tied": [proposals[i].knob.label for i in among]}


def may_win(outcomes: Sequence[dict], rule: str, n: int, tie_se: float = TIE_SE) -> set[int]:
    """Indices among the outcomes so far that can still win once the rest are in (only their weights
    need stay in memory). A noise-aware winner is within tie_se x SE of the final best, which is at least
    the best so far, and an SE is at most 0.5 / sqrt(n) (at p = 0.5)."""
    ok = [i for i, o in enumerate(outcomes) if _valid(o)]
    if not ok:
        return set()
    if rule == "noise-aware":
        best = max(outcomes[i]["accuracy"] for i in ok)
        margin = tie_se * 0.5 / math.sqrt(n) if n > 0 else math.inf
        return {i for i in ok if outcomes[i]["accuracy"] >= best - margin - 1e-12}
    top = max(outcomes[i]["score"] for i in ok)
    return {next(i for i in ok if outcomes[i]["score"] == top)}
