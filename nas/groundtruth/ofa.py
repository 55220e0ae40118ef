"""once-for-all's MobileNetV3 space (w1.2): its configs as specs, and its ImageNet accuracy predictor.

OFA writes a network as `ks` and `e` (20 layer slots, 4 per stage), `d` (depth of each of the 5
stages) and `r` (input resolution). The predictor is a 4-layer MLP over one-hot kernel and
expansion per slot (slots beyond a stage's depth all zero) and a one-hot resolution bin
(r - 112) // 16; it predicts the top-1 fraction of the sub-network with OFA's supernet weights on a
10,000-image hold-out of ImageNet train. Evaluated here in numpy, batched.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Sequence

import numpy as np

from nas.core.space import RESOLUTION, SearchSpace, load_space
from nas.core.spec import ArchSpec
from nas.groundtruth.records import ofa_predictor_weights, ofa_specialized

SPACE = "ofa_mobilenetv3"
SLOTS, PER_STAGE = 20, 4
KERNELS, EXPANDS = (3, 5, 7), (3, 4, 6)
BINS = 8


@lru_cache(maxsize=1)
def ofa_space() -> SearchSpace:
    return load_space(SPACE)


def config_of(spec: ArchSpec, space: SearchSpace | None = None) -> dict:
    """OFA's {ks, e, d, r} of a network of the space (a UserError names the field where it is not)."""
    space = space or ofa_space()
    tokens = space.encode(spec)
    ks, e, d = [0] * SLOTS, [0] * SLOTS, [0] * 5
    for dec, t in zip(space.decisions, tokens):
        value = dec.choices[t]
        if dec.kind == "layers":
            d[dec.stage - 1] = space.stages[dec.stage].layers + value
        elif dec.kind in ("k", "exp"):
            (ks if dec.kind == "k" else e)[(dec.stage - 1) * PER_STAGE + dec.layer] = value
    for i in range(SLOTS):  # OFA zeroes the slots beyond a stage's depth
        if i % PER_STAGE >= d[i // PER_STAGE]:
            ks[i] = e[i] = 0
    return {"ks": ks, "e": e, "d": d, "r": spec.resolution}


def spec_of(ks: Sequence[int], e: Sequence[int], d: Sequence[int], r: int, name: str = "ofa",
            space: SearchSpace | None = None) -> ArchSpec:
    """The network of an OFA config; `r` may lie outside the space's searched resolutions (the
    specialised networks use 140-260 px), the layers are the space's."""
    space = space or ofa_space()
    tokens = []
    for dec in space.decisions:
        if dec.kind == RESOLUTION:
            tokens.append(0)
        elif dec.kind == "layers":
            tokens.append(dec.choices.index(d[dec.stage - 1] - space.stages[dec.stage].layers))
        else:
            slot = (dec.stage - 1) * PER_STAGE + dec.layer
            value = (ks if dec.kind == "k" else e)[slot]
            tokens.append(dec.choices.index(value) if dec.layer < d[dec.stage - 1] else 0)
    return replace(space.decode(tokens, name=name), resolution=int(r))


def features(configs: Sequence[dict]) -> np.ndarray:
    """OFA's 128-wide encoding of each config."""
    x = np.zeros((len(configs), 2 * 3 * SLOTS + BINS))
    for n, c in enumerate(configs):
        for i in range(SLOTS):
            if c["ks"][i]:
                x[n, 3 * i + KERNELS.index(c["ks"][i])] = 1
            if c["e"][i]:
                x[n, 3 * SLOTS + 3 * i + EXPANDS.index(c["e"][i])] = 1
        x[n, 6 * SLOTS + (c["r"] - 112) // 16] = 1
    return x


def predict_top1(configs: Sequence[dict]) -> np.ndarray:
    """Predicted top-1 (a fraction) of each config, in one batched pass."""
    h = features(configs)
    layers = ofa_predictor_weights()
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return h[:, 0]


def specialized_networks() -> list[tuple[dict, ArchSpec | None]]:
    """OFA's 23 specialised networks with their specs: None for the w1.0 ones, which are of another
    space (narrower layers) than this w1.2 one, so neither the Note10 tables nor the predictor apply."""
    return [(n, spec_of(n["ks"], n["e"], n["d"], n["r"], name=n["name"]) if n["width_mult"] == 1.2 else None)
            for n in ofa_specialized()]
