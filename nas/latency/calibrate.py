"""Calibrated devices: a per-op latency model fitted to a handful of end-to-end timings.

A phone we cannot run our ops on still has published whole-network latencies. Each network is
turned into a few analytic features (multiply-adds by conv kind, activation traffic, squeeze-excite
elements, op count), summed over its ops (stem, every bneck layer at its input geometry, the last
stage); the device's cost of each feature is fitted by non-negative least squares, so every
coefficient is a cost >= 0 and a prediction can only grow when a layer gets wider or its kernel
larger. Features are exact integer counts of the spec, so any op geometry has a prediction.

    python -m nas.latency calibrate --device NAME --measurements FILE [--model M] [--out PATH] [--json]

The fit minimises relative error (rows weighted by 1 / ms) since a 2 ms miss matters more on a
12 ms network than on a 70 ms one. Candidate models are compared by leave-one-out error: each
network is predicted by a model fitted to the others, which is what a new architecture will see.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import nnls

from nas.runtime.cli import emit
from nas.runtime.errors import UserError
from nas.runtime.paths import ROOT, TABLES_DIR
from nas.latency.predict import Prediction
from nas.core.spec import ArchSpec, BlockSpec, Checker, conv_out_size, has_residual, load_spec, se_channels
from nas.runtime.files import atomic_write_text, load_yaml_file

UNIT = "ms"

# ---- features ---------------------------------------------------------------------------------
# Millions of multiply-adds or tensor elements per network; `ops` is a count. Depthwise and 1x1
# convs are kept apart because mobile kernels run them at very different MACs per second.
FEATURES = {
    "pw_macs": "1x1 conv multiply-adds (M): expand, project, last-stage conv",
    "dw_macs": "depthwise conv multiply-adds (M)",
    "dense_macs": "stem conv and fully connected multiply-adds (M): SE, last-stage FC, classifier",
    "memory": "activation elements read and written by convs and residual adds (M)",
    "se_elements": "elements pooled and rescaled by squeeze-excite (M)",
    "hswish_elements": "elements through h-swish / swish, which are not fused into the conv (M)",
    "ops": "ops run: stem, each bneck layer, last stage (a per-layer constant)",
}
FEATURE_NAMES = tuple(FEATURES)
_IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}
_SCALE = np.array([1e-6] * (len(FEATURE_NAMES) - 1) + [1.0])

# Candidate models, simplest first; each term has a physical reading (see FEATURES).
MODELS = {
    "macs": ("pw_macs", "dw_macs", "dense_macs", "ops"),
    "roofline": ("pw_macs", "dw_macs", "memory", "ops"),
    "macs_se": ("pw_macs", "dw_macs", "se_elements", "ops"),
    "macs_se_act": ("pw_macs", "dw_macs", "se_elements", "hswish_elements", "ops"),
    "roofline_se": ("pw_macs", "dw_macs", "memory", "se_elements", "ops"),
}


def _nonlinear(act: str) -> bool:
    return act in ("hswish", "swish")


def _add(v: list[float], name: str, amount: float) -> None:
    v[_IDX[name]] += amount


@lru_cache(maxsize=100_000)
def _stem_features(k: int, out: int, act: str, resolution: int, s: int) -> tuple[float, ...]:
    v = [0.0] * len(FEATURE_NAMES)
    hw = conv_out_size(resolution, k, s)
    _add(v, "dense_macs", k * k * 3 * out * hw * hw)
    _add(v, "memory", 3 * resolution * resolution + out * hw * hw)
    if _nonlinear(act):
        _add(v, "hswish_elements", out * hw * hw)
    _add(v, "ops", 1)
    return tuple(v)


@lru_cache(maxsize=200_000)
def _bneck_features(b: BlockSpec, cin: int, hw: int, se_style: str) -> tuple[float, ...]:
    v = [0.0] * len(FEATURE_NAMES)
    ho = conv_out_size(hw, b.k, b.s)
    act_elems = 0
    if b.exp != cin:
        _add(v, "pw_macs", cin * b.exp * hw * hw)
        _add(v, "memory", (cin + b.exp) * hw * hw)
        act_elems += b.exp * hw * hw
    _add(v, "dw_macs", b.k * b.k * b.exp * ho * ho)
    _add(v, "memory", b.exp * (hw * hw + ho * ho))
    act_elems += b.exp * ho * ho
    if b.se:
        _add(v, "dense_macs", 2 * b.exp * se_channels(se_style, b.exp, cin))
        _add(v, "se_elements", b.exp * ho * ho)
    _add(v, "pw_macs", b.exp * b.out * ho * ho)
    _add(v, "memory", (b.exp + b.out) * ho * ho)
    if has_residual(b, cin):
        _add(v, "memory", 3 * b.out * ho * ho)
    if _nonlinear(b.act):
        _add(v, "hswish_elements", act_elems)
    _add(v, "ops", 1)
    return tuple(v)


@lru_cache(maxsize=10_000)
def _head_features(conv: int, fc: int | None, act: str, cin: int, hw: int, classes: int) -> tuple[float, ...]:
    v = [0.0] * len(FEATURE_NAMES)
    _add(v, "pw_macs", cin * conv * hw * hw)
    _add(v, "memory", (cin + conv) * hw * hw)
    features = conv
    if fc:
        _add(v, "dense_macs", conv * fc)
        features = fc
    _add(v, "dense_macs", features * classes)
    if _nonlinear(act):
        _add(v, "hswish_elements", conv * hw * hw + (fc or 0))
    _add(v, "ops", 1)
    return tuple(v)


def _op_rows(spec: ArchSpec) -> list[tuple[float, ...]]:
    s = spec.stem
    rows = [_stem_features(s.k, s.out, s.act, spec.resolution, s.s)]
    ch, hw = s.out, conv_out_size(spec.resolution, s.k, s.s)
    for b in spec.blocks:
        rows.append(_bneck_features(b, ch, hw, spec.se_style))
        ch, hw = b.out, conv_out_size(hw, b.k, b.s)
    h = spec.head
    rows.append(_head_features(h.conv, h.fc, h.act, ch, hw, spec.num_classes))
    return rows


def spec_features(spec: ArchSpec) -> np.ndarray:
    """All features of a network (FEATURE_NAMES order, in the units of FEATURES)."""
    return feature_matrix([spec], FEATURE_NAMES)[0]


def feature_matrix(specs: Sequence[ArchSpec], names: Sequence[str]) -> np.ndarray:
    """(n, len(names)) features of many networks: one reduction over all their ops.

    The per-op values are whole numbers far below 2**53, so the sums are exact whatever their order.
    """
    cols = [_IDX[n] for n in names]
    if not specs:
        return np.zeros((0, len(cols)))
    rows, starts = [], []
    for spec in specs:
        starts.append(len(rows))
        rows.extend(_op_rows(spec))
    totals = np.add.reduceat(np.array(rows), starts, axis=0)
    return totals[:, cols] * _SCALE[cols]


# ---- fitting ----------------------------------------------------------------------------------

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
    x = x_all[:, [_IDX[f] for f in feats]]
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
    return best, fits


# ---- the calibrated device --------------------------------------------------------------------

class CalibratedDevice:
    """A Device whose latency is a fitted, non-negative combination of analytic features."""

    def __init__(self, name: str, features: Sequence[str], coefficients: Sequence[float],
                 spread: tuple[float, float], info: Mapping[str, Any] | None = None):
        self.name = name
        self.features = tuple(features)
        self.coef = np.asarray(coefficients, dtype=float)
        self.q10, self.q90 = spread
        self.info = dict(info or {})  # the file's record: device, fitted networks, errors

    def _rows(self, ms: np.ndarray) -> np.ndarray:
        return np.stack([ms, ms * (1 + self.q10), ms * (1 + self.q90)], axis=1)

    def predict_many(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """(n, 3) array of median, p10, p90 in ms."""
        x = feature_matrix(specs, self.features)
        # Term by term in a fixed order, not a BLAS dot product whose summation order depends on
        # the machine and the batch size: the same spec gives the same ms everywhere.
        ms = np.zeros(len(x))
        for j, c in enumerate(self.coef):
            ms += x[:, j] * c
        return self._rows(ms)

    def predict(self, spec: ArchSpec) -> Prediction:
        ms, p10, p90 = self.predict_many([spec])[0]
        return Prediction(float(ms), float(p10), float(p90))


def _num(v: float) -> float:
    return float(f"{v:.6g}")


def calibrated_yaml(name: str, device_info: Mapping[str, Any], fit: Fit, fits: Sequence[Fit],
                    labels: Sequence[str], spec_paths: Sequence[str], measurements: str) -> str:
    q10, q90 = fit.spread()
    device = {"name": name, **{k: v for k, v in device_info.items() if k != "name"}}
    coef = {f: float(c) for f, c in zip(fit.features, fit.coef)}
    loo = {"median_abs_err_pct": _num(fit.loo_median_pct), "max_abs_err_pct": _num(fit.loo_max_pct),
           "rms_err_pct": _num(fit.loo_rms_pct)}
    lines = [
        f"# Calibrated latency model for {name}: python -m nas.latency calibrate --device {name} "
        f"--measurements {measurements}",
        "kind: calibrated",
        f"device: {json.dumps(device, sort_keys=True)}",
        f"unit: {UNIT}",
        f"model: {fit.model}",
        f"features: {json.dumps(list(fit.features))}",
        f"feature_units: {json.dumps({f: FEATURES[f] for f in fit.features})}",
        "# ms per unit of each feature (full precision: predictions must not depend on rounding)",
        f"coefficients: {json.dumps(coef)}",
        "# p10 / p90 = ms * (1 + q10 / q90): percentiles of (published - predicted) / predicted over the",
        "# leave-one-out predictions, widened to include 0",
        f"spread: {json.dumps({'q10': float(q10), 'q90': float(q90)})}",
        f"loo: {json.dumps(loo)}",
        f"measurements: {json.dumps(measurements)}",
        "candidates:",
    ]
    for f in fits:
        lines.append(f"  - {json.dumps(_candidate_row(f))}")
    lines.append("networks:")
    for row in _network_rows(fit, labels, spec_paths):
        lines.append(f"  - {json.dumps(row)}")
    # Written last: a file cut short loses it, so truncation is detected on load.
    lines.append(f"n_networks: {len(labels)}")
    return "\n".join(lines) + "\n"


def _candidate_row(f: Fit) -> dict:
    return {"model": f.model, "features": list(f.features), "loo_median_abs_err_pct": _num(f.loo_median_pct),
            "loo_max_abs_err_pct": _num(f.loo_max_pct), "loo_rms_err_pct": _num(f.loo_rms_pct)}


def _network_rows(fit: Fit, labels: Sequence[str], spec_paths: Sequence[str]) -> list[dict]:
    return [{"network": lab, "spec": p, "published_ms": _num(m), "fitted_ms": _num(fm), "loo_ms": _num(lm),
             "loo_err_pct": _num((lm / m - 1) * 100)}
            for lab, p, m, fm, lm in zip(labels, spec_paths, fit.ms, fit.fitted, fit.loo)]


_FILE_KEYS = ("kind", "device", "unit", "model", "features", "feature_units", "coefficients", "spread", "loo",
              "measurements", "candidates", "networks", "n_networks")


def calibrated_from_dict(data: Any, source: str) -> CalibratedDevice:
    c = Checker(source)
    if isinstance(data, Mapping) and "measurements" in data and "kind" not in data:
        raise c.fail("kind", "this is a measurements file, not a device: fit one with "
                     "`python -m nas.latency calibrate --device NAME --measurements FILE`")
    d = c.mapping(data, "", _FILE_KEYS, ("kind", "device", "unit", "features", "coefficients", "spread",
                                         "n_networks"))
    if d["kind"] != "calibrated":
        raise c.fail("kind", f"expected 'calibrated', got {d['kind']!r}")
    if d["unit"] != UNIT:
        raise c.fail("unit", f"expected 'ms', got {d['unit']!r}")
    device = d["device"]
    if not isinstance(device, Mapping) or not isinstance(device.get("name"), str):
        raise c.fail("device", "expected a mapping with the device's name")
    feats = d["features"]
    if not isinstance(feats, list) or not feats:
        raise c.fail("features", "expected a non-empty list of feature names")
    for i, f in enumerate(feats):
        if f not in FEATURES:
            raise c.fail(f"features[{i}]", f"unknown feature {f!r} (known: {', '.join(FEATURE_NAMES)})")
    coefs = c.mapping(d["coefficients"], "coefficients", tuple(feats), tuple(feats))
    values = [_finite(coefs[f], c, f"coefficients.{f}", lo=0.0) for f in feats]
    spread = c.mapping(d["spread"], "spread", ("q10", "q90"), ("q10", "q90"))
    q10 = _finite(spread["q10"], c, "spread.q10", hi=0.0)
    q90 = _finite(spread["q90"], c, "spread.q90", lo=0.0)
    networks = d.get("networks") or []
    if not isinstance(networks, list) or d["n_networks"] != len(networks):
        raise c.fail("n_networks", f"says {d['n_networks']!r} networks but the file lists "
                     f"{len(networks) if isinstance(networks, list) else 'none'} (file truncated or edited?)")
    return CalibratedDevice(str(device["name"]), feats, values, (q10, q90), info=dict(d))


def _finite(v: Any, c: Checker, field: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        bound = f" >= {lo:g}" if lo > -math.inf else f" <= {hi:g}" if hi < math.inf else ""
        raise c.fail(field, f"expected a finite number{bound}, got {v!r}")
    return float(v)


def load_calibrated_device(path: str | os.PathLike) -> CalibratedDevice:
    return calibrated_from_dict(load_yaml_file(path), source=str(path))


# ---- measurement files ------------------------------------------------------------------------

@dataclass(frozen=True)
class Measurement:
    spec_path: str     # as written in the file
    spec: ArchSpec
    ms: float
    source: str
    label: str


def _resolve(path_text: str, base: Path) -> Path | None:
    p = Path(path_text).expanduser()
    if p.is_absolute():
        return p if p.is_file() else None
    for root in (base, ROOT):
        if (root / p).is_file():
            return root / p
    return None


def _rows_from_csv(path: Path) -> list[dict]:
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read CSV: {err}", source=str(path)) from None
    for i, row in enumerate(rows):
        if None in row:
            raise UserError("more cells than header columns", source=str(path), field=f"row {i + 2}")
        if "ms" in row:
            try:
                row["ms"] = float(row["ms"])
            except (TypeError, ValueError):
                pass  # reported below as a bad value with its field
    return rows


def load_measurements(path: str | os.PathLike) -> tuple[dict, list[Measurement]]:
    """(device description, measurements) of a YAML or CSV file; errors name the file and field."""
    p = Path(path)
    c = Checker(str(p))
    if p.suffix.lower() == ".csv":
        if not p.is_file():
            raise UserError("file not found", source=str(p))
        device, rows = {}, _rows_from_csv(p)
    else:
        data = load_yaml_file(p)
        if isinstance(data, Mapping) and data.get("kind") == "calibrated":
            raise c.fail("kind", "this is a calibrated device; --measurements takes the timings it was fitted to")
        d = c.mapping(data, "", ("device", "unit", "measurements"), ("measurements",))
        if d.get("unit", UNIT) != UNIT:
            raise c.fail("unit", f"expected 'ms', got {d['unit']!r}")
        device = d.get("device") or {}
        if not isinstance(device, Mapping):
            raise c.fail("device", "expected a mapping describing the device")
        rows = d["measurements"]
    if not isinstance(rows, list) or not rows:
        raise c.fail("measurements", "expected a non-empty list of {spec, ms, source}")
    out, seen = [], {}
    for i, row in enumerate(rows):
        f = f"measurements[{i}]"
        r = c.mapping(row, f, ("spec", "ms", "source", "network"), ("spec", "ms"))
        if not isinstance(r["spec"], str) or not r["spec"].strip():
            raise c.fail(f"{f}.spec", f"expected a spec path, got {r['spec']!r}")
        ms = r["ms"]
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
            raise c.fail(f"{f}.ms", f"expected a finite latency > 0 in ms, got {ms!r}")
        found = _resolve(r["spec"].strip(), p.parent)
        if found is None:
            raise c.fail(f"{f}.spec", f"spec file not found: {r['spec']} (relative to the file or the repository)")
        try:
            spec = load_spec(found)
        except UserError as err:  # name the row that points at the broken spec, and the spec's own fault
            raise c.fail(f"{f}.spec", str(err)) from None
        key = spec.content_hash()
        if key in seen:
            raise c.fail(f"{f}.spec", f"same architecture as measurements[{seen[key]}] "
                         "(average repeated timings into one entry)")
        seen[key] = i
        out.append(Measurement(r["spec"].strip(), spec, float(ms), str(r.get("source", "")),
                               str(r.get("network") or spec.name)))
    return dict(device), out


# ---- command line -----------------------------------------------------------------------------

def _display_path(path: str) -> str:
    """Repository-relative where possible, so a shipped file does not record one machine's paths."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def check_device_name(name: str) -> str:
    if not name or any(ch in name for ch in "/\\") or name.startswith("."):
        raise argparse.ArgumentTypeError(f"a device name is a plain file stem, got {name!r}")
    return name


def register(subparsers) -> argparse.ArgumentParser:
    """Add `calibrate` to the `python -m nas.latency` subcommands."""
    p = subparsers.add_parser("calibrate", help="fit a device's latency model to end-to-end timings",
                              description=__doc__.strip().splitlines()[0])
    p.add_argument("--device", required=True, type=check_device_name, help="device name (latency_tables/NAME.yaml)")
    p.add_argument("--measurements", required=True, help="YAML or CSV file of spec path, ms")
    p.add_argument("--model", default="auto", choices=["auto", *MODELS],
                   help="latency model; auto picks the lowest leave-one-out error (default)")
    p.add_argument("--out", help="output file (default latency_tables/NAME.yaml)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run_calibrate)
    return p


def run_calibrate(args: argparse.Namespace) -> int:
    device_info, ms_list = load_measurements(args.measurements)
    fit, fits = calibrate([m.spec for m in ms_list], [m.ms for m in ms_list], args.model, args.measurements)
    out = Path(args.out) if args.out else TABLES_DIR / f"{args.device}.yaml"
    labels = [m.label for m in ms_list]
    text = calibrated_yaml(args.device, device_info, fit, fits, labels, [m.spec_path for m in ms_list],
                           _display_path(args.measurements))
    try:
        atomic_write_text(out, text)
    except OSError as err:
        raise UserError(f"cannot write: {err.strerror or err}", source=str(out)) from None
    q10, q90 = fit.spread()
    result = {
        "device": args.device, "model": fit.model, "out": str(out),
        "coefficients": {f: float(c) for f, c in zip(fit.features, fit.coef)},
        "loo_median_abs_err_pct": round(fit.loo_median_pct, 3),
        "loo_max_abs_err_pct": round(fit.loo_max_pct, 3),
        "spread": {"q10": q10, "q90": q90},
        "candidates": [_candidate_row(f) for f in fits],
        "networks": _network_rows(fit, labels, [m.spec_path for m in ms_list]),
    }
    emit(result, args.json, _human)
    return 0


def _human(r: dict) -> str:
    coef = ", ".join(f"{k} {v:.4g}" for k, v in r["coefficients"].items())
    lines = [f"{r['device']}: model {r['model']}, ms per unit: {coef}",
             f"{'network':34s} {'published':>9s} {'fitted':>8s} {'LOO':>8s} {'LOO err':>8s}"]
    for n in r["networks"]:
        lines.append(f"{n['network']:34s} {n['published_ms']:9.2f} {n['fitted_ms']:8.2f} {n['loo_ms']:8.2f} "
                     f"{n['loo_err_pct']:+7.1f}%")
    lines.append(f"leave-one-out error: median {r['loo_median_abs_err_pct']:.1f}%, max {r['loo_max_abs_err_pct']:.1f}%")
    if len(r["candidates"]) > 1:
        lines.append(f"candidate models, leave-one-out |error| %:  {'median':>6s} {'max':>6s} {'rms':>6s}")
        for c in r["candidates"]:
            mark = "*" if c["model"] == r["model"] else " "
            lines.append(f"  {mark} {c['model']:12s} {', '.join(c['features']):52s} {c['loo_median_abs_err_pct']:6.1f} "
                         f"{c['loo_max_abs_err_pct']:6.1f} {c['loo_rms_err_pct']:6.1f}")
    lines.append(f"wrote {r['out']}")
    return "\n".join(lines)

