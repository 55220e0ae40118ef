"""Calibrated devices: a fitted per-feature latency model, and its YAML file.

A phone we cannot run our ops on still has published whole-network latencies; `nas.latency.fit`
fits each feature's cost to them and this module keeps the result: a device that predicts from
the features alone, and the file `python -m nas.latency calibrate` writes and every command reads
(written whole, checked field by field on load, a truncated file detected).
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from nas.core.check import Checker
from nas.core.spec import ArchSpec
from nas.latency.features import FEATURE_NAMES, FEATURES, feature_matrix
from nas.latency.fit import Fit
from nas.latency.predict import Prediction
from nas.runtime.files import load_yaml_file

UNIT = "ms"


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
        lines.append(f"  - {json.dumps(candidate_row(f))}")
    lines.append("networks:")
    for row in network_rows(fit, labels, spec_paths):
        lines.append(f"  - {json.dumps(row)}")
    # Written last: a file cut short loses it, so truncation is detected on load.
    lines.append(f"n_networks: {len(labels)}")
    return "\n".join(lines) + "\n"


def candidate_row(f: Fit) -> dict:
    """One candidate model's leave-one-out errors, as the file and the --json line list them."""
    return {"model": f.model, "features": list(f.features), "loo_median_abs_err_pct": _num(f.loo_median_pct),
            "loo_max_abs_err_pct": _num(f.loo_max_pct), "loo_rms_err_pct": _num(f.loo_rms_pct)}


def network_rows(fit: Fit, labels: Sequence[str], spec_paths: Sequence[str]) -> list[dict]:
    """Each fitted network: published, fitted and held-out ms."""
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
        if not isinstance(f, str) or f not in FEATURES:
            raise c.fail(f"features[{i}]", f"unknown feature {f!r} (known: {', '.join(FEATURE_NAMES)})")
    coefs = c.mapping(d["coefficients"], "coefficients", tuple(feats), tuple(feats))
    values = [c.number(coefs[f], f"coefficients.{f}", lo=0.0) for f in feats]
    if not any(v > 0 for v in values):  # every network would take 0 ms: refused here, not blamed on a reward later
        raise c.fail("coefficients", "are all 0: the model would predict 0 ms for every network")
    spread = c.mapping(d["spread"], "spread", ("q10", "q90"), ("q10", "q90"))
    q10 = c.number(spread["q10"], "spread.q10", hi=0.0)
    q90 = c.number(spread["q90"], "spread.q90", lo=0.0)
    networks = d.get("networks") or []
    if not isinstance(networks, list) or d["n_networks"] != len(networks):
        raise c.fail("n_networks", f"says {d['n_networks']!r} networks but the file lists "
                     f"{len(networks) if isinstance(networks, list) else 'none'} (file truncated or edited?)")
    return CalibratedDevice(str(device["name"]), feats, values, (q10, q90), info=dict(d))


def load_calibrated_device(path: str | os.PathLike) -> CalibratedDevice:
    return calibrated_from_dict(load_yaml_file(path), source=str(path))

