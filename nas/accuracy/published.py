"""Published ImageNet top-1 as a second reference for the audit, and the equal-latency correlation.

`load_published()` reads `search_spaces/reference/published/imagenet.yaml`: the zoo's networks with
their published top-1 and Pixel-1 latency. The audit ranks them by every proxy and reports, per
proxy, Kendall tau against published top-1 and the partial correlation at equal latency
(`partial_correlation`): both sides in ranks, each regressed on the rank of log predicted
Pixel-1 latency, and the residuals correlated. Ranks because the scores' scales differ by orders
of magnitude (parameter counts, log-dets, accuracies) and a failed score's floor is arbitrary: in
ranks one network cannot carry the fit, and any proxy that is an increasing function of latency
has residual zero, partial correlation 0, whatever its curvature against log latency.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats

from nas.core.check import Checker
from nas.runtime.errors import UserError
from nas.runtime.files import load_yaml_file
from nas.runtime.paths import REFERENCE_DIR

PUBLISHED_FILE = REFERENCE_DIR / "published" / "imagenet.yaml"
LATENCY_DEVICE = "pixel1"
# A residual whose spread is this small a share of its side's is rounding error: that side is a
# function of latency alone.
CONSTANT_RESIDUAL = 1e-9


@dataclass(frozen=True)
class PublishedNetwork:
    network: str       # the name the paper gives it
    spec_name: str     # its spec under search_spaces/reference/
    top1: float        # published ImageNet top-1, percent
    pixel1_ms: float   # published Pixel-1 latency, ms
    source: str

    @property
    def spec_path(self) -> Path:
        return REFERENCE_DIR / f"{self.spec_name}.yaml"

    def spec(self):
        from nas.core.spec import load_spec

        return load_spec(self.spec_path)


def load_published(path: str | Path | None = None) -> list[PublishedNetwork]:
    """The published table (default: the shipped one); a bad entry is one error naming file and field."""
    path = Path(path) if path is not None else PUBLISHED_FILE
    check = Checker(str(path))
    top = check.mapping(load_yaml_file(path), "", ("networks",), ("networks",))
    rows = top["networks"]
    if not isinstance(rows, list) or not rows:
        raise check.fail("networks", "expected a non-empty list of networks")
    out, seen = [], set()
    for i, row in enumerate(rows):
        field = f"networks[{i}]"
        row = check.mapping(row, field, ("network", "spec", "top1", "pixel1_ms", "source"),
                            ("network", "spec", "top1", "pixel1_ms", "source"))
        entry = PublishedNetwork(
            network=check.text(row["network"], f"{field}.network"),
            spec_name=check.text(row["spec"], f"{field}.spec"),
            top1=check.number(row["top1"], f"{field}.top1", 0, 100, what="a top-1", unit="percent"),
            pixel1_ms=check.number(row["pixel1_ms"], f"{field}.pixel1_ms", 0, above=True, what="a latency",
                                   unit="ms"),
            source=check.text(row["source"], f"{field}.source"))
        if not entry.spec_path.is_file():
            raise check.fail(f"{field}.spec", f"no reference spec named {entry.spec_name!r} "
                                              f"(expected {entry.spec_path.name} in {REFERENCE_DIR})")
        if entry.spec_name in seen:
            raise check.fail(f"{field}.spec", f"{entry.spec_name!r} is listed twice")
        seen.add(entry.spec_name)
        out.append(entry)
    return out


def predicted_latency_ms(specs: Sequence[Any], device: str = LATENCY_DEVICE) -> list[float]:
    """The device model's latency of each spec (what the search's reward sees)."""
    from nas.latency.devices import get_device

    dev = get_device(device)
    return [float(dev.predict(s).ms) for s in specs]


# ---- statistics -----------------------------------------------------------------------------

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
    from nas.accuracy.audit import tau_standard_error

    return tau_standard_error(n - 1)
