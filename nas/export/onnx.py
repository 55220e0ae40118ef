"""Export a spec's network to ONNX, check it against torch, and time it with ONNX Runtime
(the command is `python -m nas.export`, in `nas/export/__main__.py`)."""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from nas.core.counts import count_macs, count_params
from nas.core.model import build_model
from nas.core.spec import ArchSpec
from nas.export.timing import make_session, time_session
from nas.export.verify import check_exported
from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write_bytes, load_state

OPSET = 17


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


def check_onnx(model: nn.Module, onnx_bytes: bytes, input_shape: tuple[int, ...], not_written: str, *,
               threads: int = 1, runs: int = 50, **check) -> dict:
    """nas.export.verify.check_exported for an ONNX model, timed with ONNX Runtime."""
    seed = check.get("seed", 0)
    return check_exported(model, input_shape, not_written, runtime="ONNX Runtime",
                          diff=lambda: max_abs_diff(model, onnx_bytes, input_shape, seed),
                          predict=lambda: onnx_predict(onnx_bytes),
                          timer=lambda: time_session(make_session(onnx_bytes, threads), runs=runs),
                          threads=threads, **check)


def onnx_predict(onnx_bytes: bytes, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """float32 NCHW -> logits with ONNX Runtime."""
    session = make_session(onnx_bytes, threads)
    return lambda x: session.run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]


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
