"""The checks every exported model passes before it is written: its outputs against torch's (exact
for float, loose for int8), and the JSON keys its check and timing are reported with.

Shared by the ONNX and TFLite exports and the int8 one; it imports none of them, so that each of
them can import it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from nas.runtime.errors import VerificationError

VERIFY_TOLERANCE = 1e-4
CHECK_SAMPLES = 32  # random inputs the int8 agreement check compares on


def timing_keys(t) -> dict:
    """A Timing as the JSON keys every export reports."""
    return {"latency_ms": round(t.median, 4), "latency_p10_ms": round(t.p10, 4), "latency_p90_ms": round(t.p90, 4),
            "timed_runs": t.n}


def check_exported(model: nn.Module, input_shape: tuple[int, ...], not_written: str, *, runtime: str,
                   diff: Callable[[], float], predict: Callable[[], Callable[[np.ndarray], np.ndarray]],
                   timer: Callable[[], Any], verify: bool = True, time_it: bool = True, threads: int = 1,
                   seed: int = 0, int8: bool = False) -> dict:
    """The check (`max_abs_diff`, `verified`) and timing (`latency_ms`...) keys of an exported model:
    `diff()` is its float check's max |diff| from torch, `predict()` makes its predictor (float32
    NCHW in, logits out) for the loose int8 check, and `timer()` times it. A failed check is a
    VerificationError whose message ends "`not_written` not written"."""
    result: dict[str, Any] = {}
    if verify and int8:
        result.update(loose_check(model, predict(), input_shape, runtime, not_written, seed))
    elif verify:
        diff = diff()
        result["max_abs_diff"] = diff
        result["verified"] = math.isfinite(diff) and diff <= VERIFY_TOLERANCE
        if not result["verified"]:
            raise VerificationError(f"{runtime} disagrees with torch (max |diff| {diff:.3g}, tolerance "
                                    f"{VERIFY_TOLERANCE:g}); {not_written} not written")
    if time_it:
        result.update(timing_keys(timer()), threads=threads)
    return result


def int8_agreement(model: nn.Module, predict: Callable[[np.ndarray], np.ndarray], input_shape: Sequence[int],
                   samples: int = CHECK_SAMPLES, seed: int = 0) -> dict:
    """How closely an int8 model follows the float torch one on `samples` random normal inputs:
    `max_abs_diff` (largest |int8 - torch| logit), `top1_agreement` (the fraction of inputs with the
    same arg-max) and `output_range` (the largest |torch logit|, the scale the diff is read against)."""
    rng = np.random.default_rng(seed)
    diff, agree, scale = 0.0, 0, 0.0
    model.eval()
    for _ in range(samples):
        x = rng.standard_normal(tuple(input_shape)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = predict(x)
        diff = max(diff, float(np.max(np.abs(got - expected))))
        scale = max(scale, float(np.max(np.abs(expected))))
        agree += int(np.argmax(got) == np.argmax(expected))
    return {"max_abs_diff": diff, "top1_agreement": agree / samples, "output_range": scale}


def loose_check(model: nn.Module, predict: Callable[[np.ndarray], np.ndarray], input_shape: Sequence[int],
                what: str, not_written: str, seed: int = 0) -> dict:
    """An int8 model's check: int8_agreement's keys and `verified`, which asks only for finite
    outputs (int8 logits differ from float ones by design: no 1e-4 tolerance here). Non-finite
    outputs are a VerificationError whose message ends "`not_written` not written"."""
    result = int8_agreement(model, predict, input_shape, seed=seed)
    result["verified"] = bool(np.isfinite(result["max_abs_diff"]))
    if not result["verified"]:
        raise VerificationError(f"int8 {what} gives non-finite outputs where torch's are finite; {not_written} "
                                "not written")
    return result
