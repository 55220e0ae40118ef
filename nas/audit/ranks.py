"""Rank statistics the audits report: a proxy's scores against a reference in Kendall tau and
Spearman rho, the partial tau at equal latency, and the noise of each at n.

The partial correlation (`partial_correlation`): both sides in ranks, each regressed on the rank of
log predicted latency, and the residuals correlated. Ranks because the scores' scales differ by
orders of magnitude (parameter counts, log-dets, accuracies) and a failed score's floor is
arbitrary: in ranks one network cannot carry the fit, and any proxy that is an increasing function
of latency has residual zero, partial correlation 0, whatever its curvature against log latency.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

# A residual whose spread is this small a share of its side's is rounding error: that side is a
# function of latency alone.
CONSTANT_RESIDUAL = 1e-9


def tau_standard_error(n: int) -> float:
    """Standard deviation of Kendall's tau between unrelated rankings of n items."""
    return math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))) if n > 1 else math.inf


def rank_values(results: Sequence[dict[str, Any]]) -> list[float]:
    """Scores to rank by; a failed or missing score ranks below every other."""
    values = [r.get("score") if r and not r.get("failed") else None for r in results]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    floor = (min(finite) if finite else 0.0) - 1.0
    return [v if v is not None and math.isfinite(v) else floor for v in values]


def correlation(reference: Sequence[float], scores: Sequence[float]) -> tuple[float | None, float | None]:
    """(Kendall tau-b, Spearman rho), None where undefined (fewer than 2 items or a constant side)."""
    if len(reference) < 2 or len(set(reference)) < 2 or len(set(scores)) < 2:
        return None, None
    tau = stats.kendalltau(reference, scores).statistic
    rho = stats.spearmanr(reference, scores).statistic
    return (None if math.isnan(tau) else float(tau)), (None if math.isnan(rho) else float(rho))


def residuals(y: Sequence[float], covariate: Sequence[float]) -> np.ndarray:
    """y minus its least-squares line on the covariate (intercept and slope)."""
    y, x = np.asarray(y, dtype=float), np.asarray(covariate, dtype=float)
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef


def partial_correlation(target: Sequence[float], score: Sequence[float], latency_ms: Sequence[float],
                        ranks: bool = True) -> dict[str, float | None]:
    """Kendall tau-b and Pearson r of the residuals of target and score, each regressed on log latency.

    With `ranks` (what the audit uses) target, score and log latency are replaced by their ranks
    (ties averaged) first, so Pearson of the residuals is the partial Spearman correlation. A side
    whose residual is constant (a function of latency alone) has nothing to say at equal latency:
    its partial correlations are 0. None where undefined: fewer than 4 items (a line through 3
    points leaves one degree of freedom) or a constant target residual.
    """
    target, score, lat = (np.asarray(v, dtype=float) for v in (target, score, latency_ms))
    if not (len(target) == len(score) == len(lat)):
        raise ValueError(f"lengths differ: {len(target)}, {len(score)}, {len(lat)}")
    if np.any(lat <= 0) or not np.all(np.isfinite(lat)):
        raise ValueError("latencies must be finite and > 0")
    empty = {"partial_tau": None, "partial_pearson": None, "n": len(target)}
    if len(target) < 4:
        return empty
    covariate = np.log(lat)
    if ranks:
        target, score, covariate = (stats.rankdata(v) for v in (target, score, covariate))
    r_target, r_score = residuals(target, covariate), residuals(score, covariate)
    if _constant(r_target, target):
        return empty
    if _constant(r_score, score):
        return {"partial_tau": 0.0, "partial_pearson": 0.0, "n": len(target)}
    tau = stats.kendalltau(r_target, r_score).statistic
    pearson = stats.pearsonr(r_target, r_score).statistic
    return {"partial_tau": None if math.isnan(tau) else float(tau),
            "partial_pearson": None if math.isnan(pearson) else float(pearson), "n": len(target)}


def _constant(residual: np.ndarray, side: np.ndarray) -> bool:
    spread = float(np.ptp(side))
    return spread == 0 or float(np.ptp(residual)) <= CONSTANT_RESIDUAL * spread


def partial_tau_standard_error(n: int) -> float:
    """Standard deviation of the partial tau of unrelated rankings: tau's at n - 1, as regressing out
    one covariate costs one degree of freedom (exact for Pearson's partial r, close for tau)."""
    return tau_standard_error(n - 1)
