"""Surrogates of Accel-NASBench's records: ImageNet top-1 and FPGA latency of any network of its space.

Top-1: gradient-boosted trees (`HistGradientBoostingRegressor`) on the 28 per-block choices of a
record's `architecture`, as numbers (expansion 1/4/6, kernel 3/5, layers 1..4, SE 0/1). Every choice
is ordinal, so a tree splits it as well as a one-hot column would (one-hot measured no better and
fits twice as slowly); shallow trees (4 leaves) because top-1 is nearly additive over the blocks.

Latency (`zcu102`, `vck190`): a network's measured latency where the records hold it; elsewhere a
sum of layer costs fitted by non-negative least squares in ms: per block, the cost of its first
layer and of each further layer, one pair per (expansion, kernel, SE), plus a fixed stem and head.
An accelerator runs the layers one after another, so the sum is its structure; it leaves a tenth of
the held-out error that trees on log(latency) leave (`surrogate_report` shows both).

Each model is fitted on all records on first use, once per process, deterministically.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import nnls
from scipy.stats import kendalltau
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from nas.core.spec import ArchSpec
from nas.groundtruth.accel import BLOCKS, FIELDS, accel_space, arch_of
from nas.groundtruth.records import ACCEL_SOURCE, FPGA_DEVICES, accel_records
from nas.latency.predict import Prediction

KEYS = tuple(f"block{i}_{f}" for i in range(BLOCKS) for f in FIELDS)  # the 28 feature columns
TOP1_TREES = {"max_iter": 400, "learning_rate": 0.2, "max_leaf_nodes": 4, "random_state": 0}
LATENCY_TREES = {"max_iter": 300, "learning_rate": 0.2, "max_leaf_nodes": 8, "random_state": 0}
_Z90 = 1.2815515655446004  # standard normal 90th percentile: p10 / p90 of a measured mean +- std
_E, _K = (1, 4, 6), (3, 5)
_COMBOS = tuple((e, k, se) for e in _E for k in _K for se in (False, True))


# ---- features ---------------------------------------------------------------------------------
def features(archs: Sequence[dict]) -> np.ndarray:
    """(n, 28) per-block choices as numbers, in KEYS order."""
    return np.array([[float(a[k]) for k in KEYS] for a in archs], dtype=float).reshape(len(archs), len(KEYS))


def layer_features(archs: Sequence[dict]) -> np.ndarray:
    """(n, 7 * 24 + 1): per block, a one-hot of its first layer's (e, k, se) and, in the next 12
    columns, the number of further layers at the same (e, k, se); the last column is the stem and head."""
    x = features(archs).reshape(len(archs), BLOCKS, len(FIELDS))
    e, k, layers, se = (x[:, :, FIELDS.index(f)] for f in FIELDS)
    combo = np.searchsorted(_E, e) * 4 + np.searchsorted(_K, k) * 2 + se.astype(int)  # index into _COMBOS
    if not (np.isin(e, _E) & np.isin(k, _K)).all():
        raise ValueError("an expansion or kernel outside the space")
    width = 2 * len(_COMBOS)
    out = np.zeros((len(archs), BLOCKS * width + 1))
    rows = np.arange(len(archs))[:, None]
    cols = np.arange(BLOCKS)[None, :] * width + combo
    out[rows, cols] = 1.0
    out[rows, cols + len(_COMBOS)] = layers - 1
    out[:, -1] = 1.0
    return out


def _archs_of(specs: Sequence[ArchSpec]) -> list[dict]:
    space = accel_space()
    return [arch_of(s, space) for s in specs]  # refuses a network outside the space, naming the field


# ---- models -----------------------------------------------------------------------------------
class LayerCostModel:
    """Latency in ms as a non-negative sum of layer costs (see the module's docstring)."""

    def fit(self, archs: Sequence[dict], ms: np.ndarray) -> "LayerCostModel":
        self.coef, _ = nnls(layer_features(archs), np.asarray(ms, dtype=float))
        return self

    def predict(self, archs: Sequence[dict]) -> np.ndarray:
        x = layer_features(archs)
        out = np.zeros(len(x))
        for j in np.flatnonzero(self.coef):  # a fixed summation order: the same ms for any batch
            out += x[:, j] * self.coef[j]
        return out


def _trees(params: dict, x: np.ndarray, y: np.ndarray) -> HistGradientBoostingRegressor:
    # One OpenMP thread, to fit and to predict: 3,110 rows are too few to share, and on a busy
    # 2-core machine OpenMP's waiting threads made a fit 6-12 times slower than one thread.
    with threadpool_limits(1, user_api="openmp"):
        return HistGradientBoostingRegressor(**params).fit(x, y)


def _tree_predict(model: HistGradientBoostingRegressor, x: np.ndarray) -> np.ndarray:
    with threadpool_limits(1, user_api="openmp"):
        return model.predict(x)


class LogTrees:
    """Gradient-boosted trees on log(ms) of the per-block choices (the alternative the report compares)."""

    def fit(self, archs: Sequence[dict], ms: np.ndarray) -> "LogTrees":
        self.model = _trees(LATENCY_TREES, features(archs), np.log(ms))
        return self

    def predict(self, archs: Sequence[dict]) -> np.ndarray:
        return np.exp(_tree_predict(self.model, features(archs)))


class Top1Trees:
    """The top-1 surrogate: gradient-boosted trees on the 28 choices (points of top-1, %)."""

    def fit(self, archs: Sequence[dict], top1: np.ndarray) -> "Top1Trees":
        self.model = _trees(TOP1_TREES, features(archs), top1)
        return self

    def predict(self, archs: Sequence[dict]) -> np.ndarray:
        return _tree_predict(self.model, features(archs))


class LeastSquares:
    """A baseline: ordinary least squares on `columns(archs)`."""

    def __init__(self, columns: Callable[[Sequence[dict]], np.ndarray]):
        self.columns = columns

    def fit(self, archs: Sequence[dict], y: np.ndarray) -> "LeastSquares":
        self.model = LinearRegression().fit(self.columns(archs), y)
        return self

    def predict(self, archs: Sequence[dict]) -> np.ndarray:
        return self.model.predict(self.columns(archs))


def Linear() -> LeastSquares:  # noqa: N802 - a model factory, named like the others
    """Baseline: ordinary least squares on the same 28 choices."""
    return LeastSquares(features)


def MacsLinear() -> LeastSquares:  # noqa: N802
    """Baseline: a straight line in the network's MACs alone (the records' model_info: records only)."""
    return LeastSquares(_macs)


def _macs(archs: Sequence[dict]) -> np.ndarray:
    macs = _record_macs()
    return np.array([[macs[tuple(a[k] for k in KEYS)]] for a in archs])


@lru_cache(maxsize=1)
def _record_macs() -> dict[tuple, float]:
    """Each record's MACs (millions) as its authors give them, by its choices."""
    return {tuple(r["architecture"][k] for k in KEYS): r["model_info"]["macs"] for r in accel_records()}


# ---- the records as training data -------------------------------------------------------------
@lru_cache(maxsize=1)
def _top1_data() -> tuple[tuple[dict, ...], np.ndarray]:
    records = accel_records()
    return tuple(r["architecture"] for r in records), np.array([r["metrics"]["val_top1"] for r in records])


@lru_cache(maxsize=None)
def _latency_data(device: str) -> tuple[tuple[dict, ...], np.ndarray, np.ndarray]:
    """Records with a measured latency on the device: architectures, latency_mean and latency_std
    (NaN where not given)."""
    key, archs, ms, sd = FPGA_DEVICES[device], [], [], []
    for r in accel_records():
        perf = (r.get("platform_perf") or {}).get(key) or {}
        if perf.get("latency_mean") is None:
            continue
        archs.append(r["architecture"])
        ms.append(perf["latency_mean"])
        sd.append(np.nan if perf.get("latency_std") is None else perf["latency_std"])
    return tuple(archs), np.array(ms, dtype=float), np.array(sd, dtype=float)


@lru_cache(maxsize=1)
def top1_model() -> Top1Trees:
    """The top-1 surrogate, fitted on every record (points of top-1, %)."""
    archs, top1 = _top1_data()
    return Top1Trees().fit(archs, top1)


def predict_top1(specs: Sequence[ArchSpec]) -> np.ndarray:
    """Predicted ImageNet top-1 (fractions) of networks of Accel-NASBench's space, in one batch."""
    archs = _archs_of(specs)
    if not archs:
        return np.zeros(0)
    return top1_model().predict(archs) / 100.0


# ---- cross-validation -------------------------------------------------------------------------
def held_out(make: Callable[[], object], archs: Sequence[dict], y: np.ndarray, folds: int, seed: int
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(true, predicted) of each fold's held-out records, the model fitted on the other folds."""
    archs = list(archs)
    out = []
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(archs):
        model = make().fit([archs[i] for i in train], y[train])
        out.append((y[test], model.predict([archs[i] for i in test])))
    return out


def fold_metrics(true: np.ndarray, pred: np.ndarray, relative: bool) -> dict[str, float]:
    err = pred - true
    m = {"tau": float(kendalltau(true, pred)[0]), "rmse": float(np.sqrt(np.mean(err ** 2))),
         "r2": float(1 - np.sum(err ** 2) / np.sum((true - true.mean()) ** 2))}
    if relative:
        ape = np.abs(pred / true - 1) * 100
        m.update(median_ape_pct=float(np.median(ape)), p90_ape_pct=float(np.quantile(ape, 0.9)))
    return m


def _summary(per_fold: list[dict[str, float]]) -> dict[str, dict]:
    out = {}
    for k in per_fold[0]:
        v = np.array([f[k] for f in per_fold])
        out[k] = {"folds": [float(x) for x in v], "mean": float(v.mean()),
                  "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return out


ROWS = {  # name: (target, what, model)
    "top1": ("top1", "gradient-boosted trees on the 28 choices (the surrogate)", Top1Trees),
    "top1_linear": ("top1", "baseline: linear in the 28 choices", Linear),
    "top1_macs": ("top1", "baseline: linear in MACs alone", MacsLinear),
    **{row: (dev, what, model) for dev in FPGA_DEVICES for row, what, model in (
        (dev, "layer-cost sum, NNLS in ms (the device's surrogate)", LayerCostModel),
        (f"{dev}_log_trees", "gradient-boosted trees on log(ms) of the 28 choices", LogTrees),
        (f"{dev}_macs", "baseline: linear in MACs alone", MacsLinear))},
}


def cross_validate(row: str, folds: int = 5, seed: int = 0) -> dict:
    """One row of the report: K-fold held-out tau, RMSE (points of top-1, or ms) and R² (and, for a
    latency, median / 90th-percentile absolute percentage error), per fold with mean and sd."""
    target, what, make = ROWS[row]
    if target == "top1":
        archs, y = _top1_data()
        unit = "points of top-1 (%)"
    else:
        archs, y, _ = _latency_data(target)
        unit = "ms"
    pairs = held_out(make, archs, y, folds, seed)
    return {"target": target, "model": what, "unit": unit, "n": len(y),
            "metrics": _summary([fold_metrics(t, p, relative=target != "top1") for t, p in pairs])}


def surrogate_report(folds: int = 5, seed: int = 0) -> dict:
    """Cross-validated accuracy of the top-1 and FPGA latency surrogates and their baselines (the same
    folds for every row)."""
    return {"source": ACCEL_SOURCE, "folds": folds, "seed": seed,
            "rows": {row: cross_validate(row, folds, seed) for row in ROWS}}


# ---- FPGA devices -----------------------------------------------------------------------------
@lru_cache(maxsize=None)
def latency_model(device: str, folds: int = 5, seed: int = 0) -> tuple[LayerCostModel, float, float]:
    """The device's layer-cost model on all its measured records, and the 10th / 90th percentiles of
    (measured - predicted) / predicted over K-fold held-out records, widened to include 0."""
    archs, ms, _ = _latency_data(device)
    rel = np.concatenate([t / p - 1 for t, p in held_out(LayerCostModel, archs, ms, folds, seed)])
    q10, q90 = np.quantile(rel, [0.1, 0.9])
    return LayerCostModel().fit(archs, ms), min(float(q10), 0.0), max(float(q90), 0.0)


@lru_cache(maxsize=None)
def _measured(device: str) -> dict[tuple, tuple[float, float]]:
    archs, ms, sd = _latency_data(device)
    return {tuple(a[k] for k in KEYS): (m, s) for a, m, s in zip(archs, ms, sd)}


class AccelFpgaDevice:
    """Accel-NASBench's FPGA latency (`zcu102`, `vck190`; ms, as its authors measured it, whatever the
    spec's resolution says) of a network of its space: measured where the records hold the network
    (p10 / p90 from its std where given, else equal to it), the layer-cost model elsewhere (p10 / p90
    from its held-out errors)."""

    measure_missing = None  # measured by Accel-NASBench's authors: nothing is measured here

    def __init__(self, name: str):
        if name not in FPGA_DEVICES:
            raise ValueError(f"no FPGA device {name!r} (one of {', '.join(FPGA_DEVICES)})")
        self.name = name
        self.source = (f"Accel-NASBench (Ahmad et al. 2024, Apache-2.0): {name} latency measured by its authors "
                       f"for its records, a layer-cost model fitted to them elsewhere")

    def ensure_ops(self, ops) -> list:
        """Nothing to measure: the model takes whole networks (one outside the space is refused on predict)."""
        return []

    def ensure(self, specs: Sequence[ArchSpec]) -> list:
        _archs_of(specs)
        return []

    def is_measured(self, spec: ArchSpec) -> bool:
        return tuple(arch_of(spec, accel_space())[k] for k in KEYS) in _measured(self.name)

    def predict_many(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """(n, 3) array of median, p10, p90 in ms."""
        archs = _archs_of(specs)
        out = np.zeros((len(archs), 3))
        measured = _measured(self.name)
        found = [measured.get(tuple(a[k] for k in KEYS)) for a in archs]
        for i, hit in enumerate(found):
            if hit is not None:
                ms, sd = hit
                spread = 0.0 if np.isnan(sd) else _Z90 * sd
                out[i] = (ms, max(ms - spread, 0.0), ms + spread)
        rest = [i for i, hit in enumerate(found) if hit is None]
        if rest:
            model, q10, q90 = latency_model(self.name)
            ms = model.predict([archs[i] for i in rest])
            out[rest] = np.stack([ms, ms * (1 + q10), ms * (1 + q90)], axis=1)
        return out

    def predict(self, spec: ArchSpec) -> Prediction:
        ms, p10, p90 = self.predict_many([spec])[0]
        return Prediction(float(ms), float(p10), float(p90))
