"""Analytic latency features of a network, summed from the shared per-layer counts.

A calibrated device costs each feature (multiply-adds by conv kind, activation traffic,
squeeze-excite elements, op count). They are built from `nas.core.counts` rows, grouped by the
ops a latency table times (stem, every bneck layer at its input geometry, the last stage), so
the MACs here are the MACs count_macs reports. Features are exact integer counts of the spec,
so any op geometry has a prediction.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from nas.core.counts import OpCount, block_counts, head_counts, stem_counts, walk_ops
from nas.core.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec

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
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
_SCALE = np.array([1e-6] * (len(FEATURE_NAMES) - 1) + [1.0])

# Which feature a layer's multiply-adds go to, by its counts kind.
_MACS_FEATURE = {"pointwise": "pw_macs", "depthwise": "dw_macs", "conv": "dense_macs", "se": "dense_macs",
                 "fc": "dense_macs", "classifier": "dense_macs"}
_UNFUSED_ACTS = ("hswish", "swish")


def _vector(part: tuple[OpCount, ...]) -> tuple[float, ...]:
    """Raw (unscaled) features of one timed op."""
    v = [0.0] * len(FEATURE_NAMES)
    for row in part:
        if row.macs:
            v[FEATURE_INDEX[_MACS_FEATURE[row.kind]]] += row.macs
        v[FEATURE_INDEX["memory"]] += row.memory
        if row.kind == "se_scale":
            v[FEATURE_INDEX["se_elements"]] += row.out
        if row.act in _UNFUSED_ACTS:
            v[FEATURE_INDEX["hswish_elements"]] += row.out
    v[FEATURE_INDEX["ops"]] += 1
    return tuple(v)


# Cached per op (a search predicts the same layers over and over), keyed like the counts.
@lru_cache(maxsize=10_000)
def _stem_vector(stem: StemSpec, resolution: int) -> tuple[float, ...]:
    return _vector(stem_counts(stem, resolution))


@lru_cache(maxsize=200_000)
def _block_vector(b: BlockSpec, cin: int, hw: int, se_style: str) -> tuple[float, ...]:
    return _vector(block_counts(b, cin, hw, se_style))


@lru_cache(maxsize=10_000)
def _head_vector(h: HeadSpec, cin: int, hw: int, num_classes: int) -> tuple[float, ...]:
    return _vector(head_counts(h, cin, hw, num_classes))


def spec_features(spec: ArchSpec) -> np.ndarray:
    """All features of a network (FEATURE_NAMES order, in the units of FEATURES)."""
    return feature_matrix([spec], FEATURE_NAMES)[0]


def feature_matrix(specs: Sequence[ArchSpec], names: Sequence[str]) -> np.ndarray:
    """(n, len(names)) features of many networks: one reduction over all their ops.

    The per-op values are whole numbers far below 2**53, so the sums are exact whatever their order.
    """
    cols = [FEATURE_INDEX[n] for n in names]
    if not specs:
        return np.zeros((0, len(cols)))
    rows, starts = [], []
    for spec in specs:
        starts.append(len(rows))
        rows.extend(walk_ops(spec, _stem_vector, _block_vector, _head_vector))
    totals = np.add.reduceat(np.array(rows), starts, axis=0)
    return totals[:, cols] * _SCALE[cols]
