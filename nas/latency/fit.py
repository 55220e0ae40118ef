"""Fitting a calibrated device: non-negative least squares, leave-one-out, model selection.

Each feature's cost is fitted by non-negative least squares, so every coefficient is a cost >= 0
and a prediction can only grow when a layer gets wider or its kernel larger. The fit minimises
relative error (rows weighted by 1 / ms) since a 2 ms miss matters more on a 12 ms network than
on a 70 ms one. Candidate models are compared by leave-one-out error: each network is predicted
by a model fitted to the others, which is what a new architecture will see.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import nnls

from nas.core.spec import ArchSpec
from nas.latency.features import FEATURE_INDEX, FEATURE_NAMES, feature_matrix
from nas.runtime.errors import UserError

# Candidate models, simplest first; each term has a physical reading (see features.FEATURES).
MODELS = {
    "macs": ("pw_macs", "dw_macs", "dense_macs", "ops"),
    "roofline": ("pw_macs", "dw_macs", "memory", "ops"),
    "macs_se": ("pw_macs", "dw_macs", "se_elements", "ops"),
    "macs_se_act": ("pw_macs", "dw_macs", "se_elements", "hswish_elements", "ops"),
    "roofline_se": ("pw_macs", "dw_macs", "memory", "se_elements", "ops"),
}

log = logging.getLogger(__name__)


def fit_nnls(x: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """Coefficients >= 0 minimising the sum of squared relative errors."""
    w = 1.0 / ms
    a = x * w[:, None]
    norm = np.linalg.norm(a, axis=0)
    norm[norm == 0] = 1.0  # an all-zero feature (no SE anywhere) gets coefficient 0
    coef, _ = nnls(a / norm, ms * w)
    return coef / norm


def loo_predictions(x: np.ndarray, ms: np.ndarray) -> np.ndarray:
    out = np.empty(len(ms))
    for i in range(len(ms)):
        keep = np.arange(len(ms)) != i
        out[i] = x[i] @ fit_nnls(x[keep], ms[keep])
    return out


@dataclass
class Fit:
    model: str
    features: tuple[str, ...]
    coef: np.ndarray
    fitted: np.ndarray
    loo: np.ndarray
    ms: np.ndarray

    @property
    def loo_rel(self) -> np.ndarray:
        return self.loo / self.ms - 1.0

    @property
    def loo_median_pct(self) -> float:
        return float(np.median(np.abs(self.loo_rel)) * 100)

    @property
    def loo_max_pct(self) -> float:
        return float(np.max(np.abs(self.loo_rel)) * 100)

    @property
    def loo_rms_pct(self) -> float:
        return float(np.sqrt(np.mean(self.loo_rel ** 2)) * 100)

    def spread(self) -> tuple[float, float]:
        """10th / 90th percentiles of (true - predicted) / predicted over the held-out networks,
        widened to include 0 so that p10 <= ms <= p90."""
        r = self.ms / self.loo - 1.0
        q10, q90 = np.quantile(r, [0.1, 0.9])
        return min(float(q10), 0.0), max(float(q90), 0.0)


def fit_model(model: str, x_all: np.ndarray, ms: np.ndarray) -> Fit:
    feats = MODELS[model]
    x = x_all[:, [FEATURE_INDEX[f] for f in feats]]
    coef = fit_nnls(x, ms)
    return Fit(model, feats, coef, x @ coef, loo_predictions(x, ms), ms)


def calibrate(specs: Sequence[ArchSpec], ms: Sequence[float], model: str = "auto",
              source: str = "<measurements>") -> tuple[Fit, list[Fit]]:
    """Fit every candidate that the data can support; return the chosen fit and all candidates.

    "auto" picks the lowest leave-one-out RMS relative error (it weighs the median and the worst
    network together; ties go to the simpler, earlier model)."""
    names = list(MODELS) if model == "auto" else [model]
    usable = [m for m in names if len(specs) >= len(MODELS[m]) + 1]
    if not usable:
        need = min(len(MODELS[m]) for m in names) + 1
        raise UserError(f"{len(specs)} networks cannot calibrate model {model!r}: it needs at least {need} "
                        f"(one more than its {need - 1} terms)", source=source, field="measurements")
    x_all = feature_matrix(specs, FEATURE_NAMES)
    fits = [fit_model(m, x_all, np.asarray(ms, dtype=float)) for m in usable]
    best = min(fits, key=lambda f: round(f.loo_rms_pct, 6))
    for f in fits:
        log.debug("model %s: leave-one-out rms %.2f%%, max %.2f%%%s", f.model, f.loo_rms_pct, f.loo_max_pct,
                  " (chosen)" if f is best else "")
    return best, fits
