"""What every latency device answers: a latency with its spread."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from nas.core.spec import ArchSpec


@dataclass(frozen=True)
class Prediction:
    ms: float       # predicted median latency
    p10: float      # 10th / 90th percentile: how likely a network is to meet a target
    p90: float

    def as_dict(self, digits: int = 4) -> dict:
        return {"latency_ms": round(self.ms, digits), "latency_p10_ms": round(self.p10, digits),
                "latency_p90_ms": round(self.p90, digits)}


class Device(Protocol):
    name: str

    def predict(self, spec: ArchSpec) -> Prediction: ...

    def predict_many(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """(n, 3) array of median, p10, p90."""
        ...
