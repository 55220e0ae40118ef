"""ImageNet top-1 from others' models as accuracy proxies: `ofa-imagenet` and `accel-imagenet`.

Each knows one space and refuses any other network, naming the field where it leaves the space.
Its `accuracy` is a *predicted* ImageNet top-1 (a fraction), never a measurement: every result
carries `accuracy_source` saying which model gave it. Queries cost microseconds, so `evaluate_many`
scores a whole batch in one pass.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Sequence

import numpy as np

from nas.accuracy.proxy_interface import Proxy
from nas.core.spec import ArchSpec
from nas.groundtruth.ofa import config_of, ofa_space, predict_top1
from nas.groundtruth.records import ACCEL_SOURCE, OFA_SOURCE
from nas.runtime.registry import PROXIES


class GroundTruthProxy(Proxy):
    cheap = True
    predicts_accuracy = True  # the score is a top-1 already: no map from scores onto accuracy

    def __init__(self, name: str, space: str, source: str, predict: Callable[[Sequence[ArchSpec]], np.ndarray],
                 label: str):
        self.name, self.space, self.source, self._predict, self.label = name, space, source, predict, label

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.name}:{self.source}".encode()).hexdigest()[:12]

    def evaluate_many(self, specs: Sequence[ArchSpec]) -> list[dict[str, Any]]:
        start = time.perf_counter()
        top1 = self._predict(list(specs))
        seconds = (time.perf_counter() - start) / max(1, len(specs))
        return [{"proxy": self.name, "score": float(a), "accuracy": float(a), "seconds": seconds, "failed": False,
                 "reason": None, "accuracy_source": self.label, "arch_hash": s.content_hash()}
                for s, a in zip(specs, top1)]

    def evaluate(self, spec: ArchSpec) -> dict[str, Any]:
        return self.evaluate_many([spec])[0]


def _ofa_predict(specs: Sequence[ArchSpec]) -> np.ndarray:
    space = ofa_space()
    return predict_top1([config_of(s, space) for s in specs])


def _accel_predict(specs: Sequence[ArchSpec]) -> np.ndarray:
    from nas.groundtruth.surrogate import predict_top1  # deferred: loads scikit-learn

    return predict_top1(specs)


@PROXIES.register("ofa-imagenet", help="predicted ImageNet top-1 (OFA's accuracy predictor); ofa_mobilenetv3 only",
                  kind="imagenet")
def _ofa_imagenet(name: str, context=None) -> GroundTruthProxy:
    return GroundTruthProxy("ofa-imagenet", "ofa_mobilenetv3", OFA_SOURCE, _ofa_predict,
                            "predicted ImageNet top-1 (OFA's accuracy predictor)")


@PROXIES.register("accel-imagenet", help="predicted ImageNet top-1 (a surrogate of Accel-NASBench's records); "
                  "accel_mnasnet only", kind="imagenet")
def _accel_imagenet(name: str, context=None) -> GroundTruthProxy:
    return GroundTruthProxy("accel-imagenet", "accel_mnasnet", ACCEL_SOURCE, _accel_predict,
                            "predicted ImageNet top-1 (surrogate of Accel-NASBench's records)")
