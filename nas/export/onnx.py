"""Export a spec's network to ONNX, check it against torch, and time it with ONNX Runtime.

    python -m nas.export SPEC.yaml --onnx OUT.onnx [--verify] [--weights W.pt] [--json]
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.runtime.cli import ArgumentParser, emit, positive_int, run_main
from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write_bytes, load_state
from nas.latency.measure import make_session, time_session
from nas.core.model import build_model, count_macs, count_params
from nas.core.spec import ArchSpec, load_spec

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
    state = load_state(path)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"weights do not fit the spec: {first}", source=path) from None


def export_spec(spec: ArchSpec, out: str | Path, *, weights: str | None = None, verify: bool = True,
                time_it: bool = True, threads: int = 1, runs: int = 50, seed: int = 0) -> dict:
    """Export, optionally check and time; writes `out` atomically. Returns the JSON result."""
    torch.manual_seed(seed)
    model = build_model(spec)
    if weights:
        load_weights(model, weights)
    else:
        randomize_for_check(model, seed)
    shape = (1, 3, spec.resolution, spec.resolution)
    onnx_bytes = export_onnx(model, shape)
    result = {"spec": spec.name, "arch_hash": spec.content_hash(), "params": count_params(spec),
              "macs": count_macs(spec), "onnx": str(out), "opset": OPSET}
    if verify:
        diff = max_abs_diff(model, onnx_bytes, shape, seed)
        result["max_abs_diff"] = diff
        result["verified"] = diff <= VERIFY_TOLERANCE
    if time_it:
        t = time_session(make_session(onnx_bytes, threads), runs=runs)
        result.update(latency_ms=round(t.median, 4), latency_p10_ms=round(t.p10, 4),
                      latency_p90_ms=round(t.p90, 4), timed_runs=t.n, threads=threads)
    # Write only after every check passed, so a failed run leaves nothing half-done.
    atomic_write_bytes(out, onnx_bytes)
    return result


def _human(r: dict) -> str:
    lines = [f"{r['spec']}: {r['params']:,} params, {r['macs'] / 1e6:.1f}M MACs -> {r['onnx']} (opset {r['opset']})"]
    if "max_abs_diff" in r:
        lines.append(f"  ONNX Runtime vs torch: max |diff| = {r['max_abs_diff']:.2e} "
                     f"({'ok' if r['verified'] else 'FAILED'}, tolerance {VERIFY_TOLERANCE:g})")
    if "latency_ms" in r:
        lines.append(f"  latency: {r['latency_ms']:.3f} ms median (p10 {r['latency_p10_ms']:.3f}, "
                     f"p90 {r['latency_p90_ms']:.3f}; {r['timed_runs']} runs, {r['threads']} thread(s), batch 1)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m nas.export", description=__doc__.strip().splitlines()[0])
    p.add_argument("spec", help="architecture spec: a YAML file or a published one by name")
    p.add_argument("--onnx", required=True, help="output .onnx path")
    p.add_argument("--verify", action="store_true", help="compare ONNX Runtime with torch (max |diff| <= 1e-4)")
    p.add_argument("--weights", help="state_dict (.pt) to export instead of random weights")
    p.add_argument("--threads", type=positive_int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.add_argument("--runs", type=positive_int, default=50, help="timed runs (default 50, at least 30)")
    p.add_argument("--no-time", action="store_true", help="skip the latency measurement")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = p.parse_args(argv)
    if args.runs < 30:
        p.error(f"argument --runs: at least 30 timed runs, got {args.runs}")
    if not str(args.onnx).strip():
        p.error("argument --onnx: empty path")
    spec = load_spec(args.spec)
    result = export_spec(spec, args.onnx, weights=args.weights, verify=args.verify,
                         time_it=not args.no_time, threads=args.threads, runs=args.runs)
    emit(result, args.json, _human)
    return 0 if result.get("verified", True) else 1


if __name__ == "__main__":
    run_main(main)
