"""The shipped ground-truth files, read once per process (small: 2 MB in all)."""
from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from nas.runtime.paths import DATA_ROOT

FPGA_DEVICES = {"zcu102": "latency_zcu102", "vck190": "latency_vck190"}  # Accel-NASBench: device -> its field

GROUNDTRUTH_DIR = DATA_ROOT / "groundtruth"
ACCEL_RECORDS = GROUNDTRUTH_DIR / "accel_records.jsonl.gz"
OFA_PREDICTOR = GROUNDTRUTH_DIR / "ofa_acc_predictor.npz"
OFA_SPECIALIZED = GROUNDTRUTH_DIR / "ofa_specialized_nets.json"

# Who measured or modelled what: every output quoting these figures says so.
ACCEL_SOURCE = ("Accel-NASBench (Ahmad et al. 2024, Apache-2.0): ImageNet top-1 measured by its authors "
                "(16-epoch proxy recipe, one seed)")
OFA_SOURCE = ("once-for-all (Cai et al. 2020, MIT): ImageNet top-1 predicted by OFA's accuracy predictor "
              "(supernet weights, 10,000-image hold-out of ImageNet train)")


@lru_cache(maxsize=1)
def accel_records() -> tuple[dict, ...]:
    """Accel-NASBench's 3,110 records as shipped (architecture, metrics, model_info, platform_perf)."""
    with gzip.open(ACCEL_RECORDS, "rt") as f:
        return tuple(json.loads(line) for line in f if line.strip())


@lru_cache(maxsize=1)
def ofa_predictor_weights() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """OFA's predictor MLP (128 -> 400 -> 400 -> 400 -> 1) as (weight, bias) pairs, float64."""
    with np.load(OFA_PREDICTOR, allow_pickle=False) as z:
        return tuple((z[f"weight{i}"].astype(np.float64), z[f"bias{i}"].astype(np.float64)) for i in range(4))


@lru_cache(maxsize=1)
def ofa_specialized() -> tuple[dict, ...]:
    """The 23 networks OFA specialised for devices, with their published ImageNet top-1 (%)."""
    return tuple(json.loads(Path(OFA_SPECIALIZED).read_text()))
