"""Fit a table device's whole-network correction, ms = scale * sum(op medians) + offset, on
networks timed whole in the same session as their ops."""
from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np

from nas.latency.build import measure_specs
from nas.runtime.paths import REFERENCE_DIR
from nas.core.spec import ArchSpec
from nas.core.spec_file import load_spec

log = logging.getLogger(__name__)

# Published networks of the MobileNetV3 family: structurally varied, always available.
CALIBRATION_REFERENCES = ("mobilenetv3_large", "mobilenetv3_large_075", "mobilenetv3_small",
                          "mobilenetv3_small_075", "mobilenetv3_large_minimalistic", "mobilenetv3_small_minimalistic")


def reference_specs() -> list[ArchSpec]:
    return [load_spec(REFERENCE_DIR / f"{name}.yaml") for name in CALIBRATION_REFERENCES]


def calibration_specs(space=None, samples: int = 24, seed: int = 0) -> list[ArchSpec]:
    """The space's seed and random samples; the MobileNetV3 references when there is no space."""
    if space is None:
        return reference_specs()
    rng = np.random.default_rng(seed)
    return [space.seed_spec()] + [space.sample_spec(rng) for _ in range(samples)]


def fit_scale_offset(sums: Sequence[float], wholes: Sequence[float]) -> dict:
    """Least squares of whole-network medians on summed op medians."""
    x, y = np.asarray(sums, float), np.asarray(wholes, float)
    a = np.c_[x, np.ones_like(x)]
    (scale, offset), *_ = np.linalg.lstsq(a, y, rcond=None)
    if scale <= 0:  # degenerate data (e.g. one network): fall back to a pure ratio
        scale, offset = float(np.median(y / x)), 0.0
    err = (scale * x + offset - y) / y * 100
    return {"scale": round(float(scale), 6), "offset_ms": round(float(offset), 6), "fitted_on": int(len(x)),
            "fit_median_abs_err_pct": round(float(np.median(np.abs(err))), 3), "fitted_at": round(time.time())}


def calibrate_host_table(device, threads: int = 1, specs: Sequence[ArchSpec] | None = None,
                         progress=None) -> dict:
    """Measure `specs` whole (and their ops, if missing), fit the correction and save the table."""
    specs = list(specs) if specs is not None else reference_specs()
    device.ensure(specs)
    runs = measure_specs(specs, threads=threads, progress=progress, backend=getattr(device, "backend", None))
    wholes = [float(np.median(w)) for w in runs]
    sums = [float(device.raw_sum(s)[0]) for s in specs]
    device.table.calibration = fit_scale_offset(sums, wholes)
    log.debug("host calibration on %d network(s): %s", len(specs), device.table.calibration)
    if device.table.path:
        device.table.save(merge=True)  # keeps ops another process added meanwhile
    return device.table.calibration
