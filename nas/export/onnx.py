"""Export a spec's network to ONNX, check it against torch, and time it with ONNX Runtime
(the command is `python -m nas.export`, in `nas/export/__main__.py`)."""
from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from nas.runtime.errors import UserError, VerificationError
from nas.runtime.files import atomic_write_bytes, load_state
from nas.latency.measure import make_session, time_session
from nas.core.counts import count_macs, count_params
from nas.core.model import build_model
from nas.core.spec import ArchSpec

OPSET = 17
VERIFY_TOLERANCE = 1e-4


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], opset: int = OPSET) -> bytes:
    """ONNX bytes of `model` in eval mode, via the legacy (TorchScript) exporter: ~100x faster."""
    model = model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(*input_shape), buf, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"], do_constant_folding=True)
    return buf.getvalue()


def randomize_for_check(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BN non-trivial statistics so that the check exercises BN folding, not an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)
    return model


def max_abs_diff(model: nn.Module, onnx_bytes: bytes, input_shape: tuple[int, ...], seed: int = 0) -> float:
    """Largest |ONNX Runtime - torch| on one random input, both in eval mode."""
    x = np.random.default_rng(seed).standard_normal(input_shape).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    got = make_session(onnx_bytes).run(None, {"input": x})[0]
    return float(np.max(np.abs(got - expected)))


def load_weights(model: nn.Module, path: str) -> None:
    state = load_state(path, finite=True)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"weights do not fit the spec: {first}", source=path) from None


def model_for_export(spec: ArchSpec, weights: str | None = None, seed: int = 0) -> nn.Module:
    """The spec's network in eval mode: `weights` loaded (checked finite and fitting), or random
    weights with randomize_for_check."""
    torch.manual_seed(seed)
    model = build_model(spec)
    if weights:
        load_weights(model, weights)
    else:
        randomize_for_check(model, seed)
    return model.eval()


def spec_summary(spec: ArchSpec) -> dict:
    return {"spec": spec.name, "arch_hash": spec.content_hash(), "params": count_params(spec),
            "macs": count_macs(spec)}


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
        from nas.export.quantize import loose_check

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


def check_onnx(model: nn.Module, onnx_bytes: bytes, input_shape: tuple[int, ...], not_written: str, *,
               threads: int = 1, runs: int = 50, **check) -> dict:
    """check_exported for an ONNX model, timed with ONNX Runtime."""
    from nas.export.quantize import onnx_predict

    seed = check.get("seed", 0)
    return check_exported(model, input_shape, not_written, runtime="ONNX Runtime",
                          diff=lambda: max_abs_diff(model, onnx_bytes, input_shape, seed),
                          predict=lambda: onnx_predict(onnx_bytes),
                          timer=lambda: time_session(make_session(onnx_bytes, threads), runs=runs),
                          threads=threads, **check)


def timing_keys(t) -> dict:
    """A Timing as the JSON keys every export reports."""
    return {"latency_ms": round(t.median, 4), "latency_p10_ms": round(t.p10, 4), "latency_p90_ms": round(t.p90, 4),
            "timed_runs": t.n}


def export_spec(spec: ArchSpec, out: str | Path, *, weights: str | None = None, verify: bool = True,
                time_it: bool = True, threads: int = 1, runs: int = 50, seed: int = 0) -> dict:
    """Export, optionally check and time; writes `out` atomically. Returns the JSON result.

    Non-finite weights are a UserError and a failed check a VerificationError, both raised before
    anything is written (a file already at `out` is left as it was)."""
    model = model_for_export(spec, weights, seed)
    shape = (1, 3, spec.resolution, spec.resolution)
    onnx_bytes = export_onnx(model, shape)
    result = {**spec_summary(spec), "onnx": str(out), "opset": OPSET}
    result.update(check_onnx(model, onnx_bytes, shape, str(out), verify=verify, time_it=time_it, threads=threads,
                             runs=runs, seed=seed))
    # Write only after every check passed, so a failed run leaves nothing half-done.
    atomic_write_bytes(out, onnx_bytes)
    return result
