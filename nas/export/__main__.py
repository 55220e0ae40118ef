"""Export a spec's network to ONNX, check it against torch, and time it with ONNX Runtime.

    python -m nas.export SPEC.yaml --onnx OUT.onnx [--verify] [--weights W.pt] [--json]

Exit status 0, or 2 for bad input (flags, spec, a weights file that is unreadable, does not fit or
holds NaN/inf), or 1 when --verify finds ONNX Runtime disagreeing with torch (a fault of the
exporter or runtime, not of the input); on any error OUT.onnx is not written.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

from nas.core.spec import load_spec  # noqa: E402
from nas.export.onnx import VERIFY_TOLERANCE, export_spec  # noqa: E402
from nas.runtime.cli import ArgumentParser, emit, positive_int, run_main  # noqa: E402


def _human(r: dict) -> str:
    lines = [f"{r['spec']}: {r['params']:,} params, {r['macs'] / 1e6:.1f}M MACs -> {r['onnx']} (opset {r['opset']})"]
    if "max_abs_diff" in r:
        lines.append(f"  ONNX Runtime vs torch: max |diff| = {r['max_abs_diff']:.2e} "
                     f"(ok, tolerance {VERIFY_TOLERANCE:g})")
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
                         time_it=not args.no_time, threads=args.threads, runs=args.runs)  # a failed check: exit 1
    emit(result, args.json, _human)
    return 0


if __name__ == "__main__":
    run_main(main)
