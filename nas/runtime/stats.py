"""Seed-to-seed statistics: an accuracy's mean and spread, a paired difference with its confidence
interval, and the one-sentence verdict a comparison ends with.

Accuracies of the same networks trained with the same k seeds are paired by seed (seed i shares
its data order and initial stream with seed i of the other network), so a difference is judged
by the spread of the k per-seed differences, with Student's t for the small k a run can afford.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from scipy import stats as _scipy

CONFIDENCE = 0.95


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of a top-1 measured on `n` images, sqrt(p(1-p)/n): the noise of the
    measurement alone (the seed-to-seed noise of training comes on top of it)."""
    if n <= 0 or not math.isfinite(accuracy):
        return math.nan
    p = min(max(accuracy, 0.0), 1.0)
    return math.sqrt(p * (1 - p) / n)


def mean_sd(mean: float, sd: float | None) -> str:
    """An accuracy as the project prints it: mean ± seed-to-seed sd (the mean alone for one seed)."""
    return f"{mean:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")


def seed_summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None for one value) and count of per-seed accuracies."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no accuracies to summarise")
    sd = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean of a[i] - b[i] and its two-sided t confidence interval (None bounds for one pair).

    With every difference equal the spread is zero and the interval is that one value.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired samples need equal, non-zero lengths, got {len(a)} and {len(b)}")
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    mean = statistics.fmean(diffs)
    n = len(diffs)
    if n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": n, "confidence": confidence}
    half = float(_scipy.t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(diffs) / math.sqrt(n))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n, "confidence": confidence}


def judge(diff: dict[str, Any]) -> str:
    """"better", "worse" or "indistinguishable": whether the interval of (first - second) excludes 0."""
    low, high = diff["ci_low"], diff["ci_high"]
    if low is None or high is None:
        return "indistinguishable"  # one pair says nothing about the noise
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "indistinguishable"


def points(x: float) -> str:
    """An accuracy difference in percentage points, signed."""
    return f"{100 * x:+.2f} points"


def verdict(name: str, baseline: str, diff: dict[str, Any], latency_ms: float | None = None) -> str:
    """One sentence: `name` is better, worse or indistinguishable from `baseline` at equal latency."""
    at = f" at {latency_ms:.3g} ms" if latency_ms is not None else " at equal latency"
    if diff["ci_low"] is None:
        return f"{name} vs {baseline}{at}: {points(diff['mean'])} from a single seed, which cannot be told from noise"
    ci = (f"{100 * diff['confidence']:.0f}% CI {100 * diff['ci_low']:+.2f} to {100 * diff['ci_high']:+.2f}, "
          f"{diff['n']} seeds")
    word = judge(diff)
    if word == "indistinguishable":
        return f"{name} is indistinguishable from {baseline}{at}: {points(diff['mean'])} ({ci})"
    return f"{name} is {word} than {baseline}{at} by {100 * abs(diff['mean']):.2f} points ({ci})"
