"""How well a table device predicts whole networks measured on this machine, with the machine's
own run-to-run noise measured in the same run for comparison."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import spearmanr

from nas.latency.build import MODEL_SCHEDULE, Schedule, measure_specs
from nas.core.spec import ArchSpec


def round_noise_pct(runs: np.ndarray) -> float:
    """Typical deviation of one round's median from the network's overall median (runs: rounds x runs)."""
    overall = np.median(runs)
    return float(np.median(np.abs(np.median(runs, axis=1) - overall)) / overall * 100)


def validate(device, specs: Sequence[ArchSpec], threads: int = 1, schedule: Schedule = MODEL_SCHEDULE,
             progress=None) -> dict:
    device.ensure(specs)
    predicted = device.predict_many(specs)[:, 0]
    # The device's own runtime and precision (an int8 table is checked on int8 networks).
    runs = measure_specs(specs, threads=threads, schedule=schedule, progress=progress,
                         backend=getattr(device, "backend", None), cache=False)
    measured = np.array([np.median(r) for r in runs])
    err = (predicted - measured) / measured * 100
    abs_err = np.abs(err)
    return {
        "samples": len(specs),
        "within_5pct": round(float(np.mean(abs_err <= 5)), 4),
        "within_10pct": round(float(np.mean(abs_err <= 10)), 4),
        "spearman": round(float(spearmanr(predicted, measured)[0]), 4),
        "median_abs_err_pct": round(float(np.median(abs_err)), 3),
        "max_abs_err_pct": round(float(np.max(abs_err)), 3),
        "mean_err_pct": round(float(np.mean(err)), 3),
        "noise_pct": round(float(np.median([round_noise_pct(r) for r in runs])), 3),
        "rows": [{"arch": s.to_string(), "predicted_ms": round(float(p), 4), "measured_ms": round(float(m), 4)}
                 for s, p, m in zip(specs, predicted, measured)],
    }
