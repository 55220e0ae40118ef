"""One iteration's proposals: per knob, the widest width that cuts the required latency, and their scores."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from nas.core.spec import ArchSpec
from nas.netadapt.surgery import Knob, candidate_widths, structure


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


def proposal_score(proposal: Proposal, outcome: dict, current_acc: float, current_ms: float, rule: str) -> float:
    """Higher is better: dAcc / |dLat| ("ratio", MobileNetV3) or the accuracy itself (original NetAdapt)."""
    if outcome["failed"] or not math.isfinite(outcome["accuracy"]):
        return -math.inf
    if rule == "accuracy":
        return outcome["accuracy"]
    return (outcome["accuracy"] - current_acc) / max(current_ms - proposal.latency_ms, 1e-9)

