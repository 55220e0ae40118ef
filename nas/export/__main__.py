"""Export a spec's network to ONNX and/or TFLite (float or int8), check it against torch, and time it.

    python -m nas.export SPEC.yaml [--onnx OUT.onnx] [--tflite OUT.tflite] [--int8] [--verify]
        [--weights W.pt] [--calibration random|data] [--dataset NAME] [--data PATH] [--json]

Exit status 0, or 2 for bad input (flags, spec, output paths, a weights file that is unreadable,
does not fit or holds NaN/inf, calibration data that cannot be read, --tflite without the
optional extra 'tflite'), or 1 when --verify finds a runtime disagreeing with torch (a fault of the
exporter or runtime, not of the input); on any error no output file is written.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

from argparse import Namespace  # noqa: E402
from pathlib import Path  # noqa: E402

from nas.accuracy.proxy_config import DATASETS, data_from_flags  # noqa: E402
from nas.accuracy.proxy_data import load_data  # noqa: E402
from nas.core.spec_file import load_spec, spec_limits  # noqa: E402
from nas.export import onnx as onnx_export  # noqa: E402  (through the module: tests replace its functions)
from nas.export import tflite as tflite_export  # noqa: E402  (through the module, as onnx_export)
from nas.export.onnx import OPSET  # noqa: E402
from nas.export.quantize import proxy_calibration, quantize_onnx, random_calibration, tflite_int8  # noqa: E402
from nas.export.verify import VERIFY_TOLERANCE  # noqa: E402
from nas.runtime.cli import ArgumentParser, THREADS, add_spec_limit_flags, emit, positive_int, run_main  # noqa: E402
from nas.runtime.errors import UserError  # noqa: E402
from nas.runtime.files import atomic_write_bytes  # noqa: E402

RANDOM_CALIBRATION_INPUTS = 16  # random weights: the ranges matter for nothing but a plausible latency
DATA_CALIBRATION_IMAGES = 256


def _check_output(path: str, flag: str) -> None:
    """An output path that can never be written is bad input, found before any work is done."""
    p = Path(path)
    if p.is_dir():
        raise UserError("is a directory, expected a file path", source=path, field=flag)
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{parent} is not a directory", source=path, field=flag)


def _calibration(args, spec, shape):
    """(calibration arrays, the JSON record of them): random normal input for random weights,
    proxy-task images (training split) for trained ones, unless --calibration says otherwise."""
    source = args.calibration or ("data" if args.weights or args.data or args.dataset else "random")
    if source == "random":
        n = args.calibration_images or RANDOM_CALIBRATION_INPUTS
        return random_calibration(shape, batches=n), {"source": "random", "images": n}

    config = data_from_flags(Namespace(dataset=args.dataset, data=args.data, resolution=spec.resolution,
                                       stem_stride="keep"))
    n = args.calibration_images or DATA_CALIBRATION_IMAGES
    data = load_data(config, train_images=n, val_images=1)
    arrays = proxy_calibration(data, n)
    return arrays, {"source": "data", "dataset": config.dataset, "path": config.path, "images": len(arrays)}


def export(args) -> dict:
    """Build, convert, check and time every requested file, then write them all (or none)."""
    spec = load_spec(args.spec)
    model = onnx_export.model_for_export(spec, args.weights)
    shape = (1, 3, spec.resolution, spec.resolution)
    outputs = [p for p in (args.onnx, args.tflite) if p]
    not_written = " and ".join(outputs)
    check = dict(verify=args.verify, time_it=not args.no_time, threads=args.threads, runs=args.runs,
                 int8=args.int8)
    result = {**onnx_export.spec_summary(spec), "int8": args.int8}
    calibration = None
    if args.int8:
        calibration, result["calibration"] = _calibration(args, spec, shape)
    files: dict[str, bytes] = {}
    if args.onnx:
        data = onnx_export.export_onnx(model, shape)
        if args.int8:
            data = quantize_onnx(data, calibration)
        result.update(onnx=args.onnx, opset=OPSET, latency_runtime="onnxruntime")
        result.update(onnx_export.check_onnx(model, data, shape, not_written, **check))
        files[args.onnx] = data
    if args.tflite:
        data = tflite_int8(model, shape, calibration) if args.int8 else tflite_export.to_tflite(model, shape)
        checked = tflite_export.check_tflite(model, data, shape, not_written, **check)
        result.update(tflite=args.tflite, tflite_runtime=tflite_export.runtime_version())
        result.update({f"tflite_{k}": v for k, v in checked.items() if k != "threads"})
        if not args.onnx:  # the one file's figures also under the plain keys
            result.update(checked, latency_runtime="litert")
        files[args.tflite] = data
    # Write only after every check of every file passed, so a failed run leaves nothing half-done.
    for path, data in files.items():
        atomic_write_bytes(path, data)
    return result


def _verdict(r: dict, prefix: str, runtime: str) -> list[str]:
    lines = []
    if f"{prefix}top1_agreement" in r:
        lines.append(f"  int8 {runtime} vs torch fp32 on random input: max |diff| = {r[prefix + 'max_abs_diff']:.3g} "
                     f"(largest |logit| {r[prefix + 'output_range']:.3g}), top-1 agreement "
                     f"{100 * r[prefix + 'top1_agreement']:.0f}%")
    elif f"{prefix}max_abs_diff" in r:
        lines.append(f"  {runtime} vs torch: max |diff| = {r[prefix + 'max_abs_diff']:.2e} "
                     f"(ok, tolerance {VERIFY_TOLERANCE:g})")
    if f"{prefix}latency_ms" in r:
        lines.append(f"  {runtime} latency: {r[prefix + 'latency_ms']:.3f} ms median (p10 "
                     f"{r[prefix + 'latency_p10_ms']:.3f}, p90 {r[prefix + 'latency_p90_ms']:.3f}; "
                     f"{r[prefix + 'timed_runs']} runs, {r['threads']} thread(s), batch 1)")
    return lines


def _human(r: dict) -> str:
    files = []
    if "onnx" in r:
        files.append(f"{r['onnx']} (opset {r['opset']})")
    if "tflite" in r:
        files.append(f"{r['tflite']} ({r['tflite_runtime']})")
    lines = [f"{r['spec']}: {r['params']:,} params, {r['macs'] / 1e6:.1f}M MACs -> {', '.join(files)}"]
    if r["int8"]:
        c = r["calibration"]
        lines.append(f"  static int8, calibrated on {c['images']} " + (
            "random normal inputs" if c["source"] == "random" else f"{c['dataset']} training images"))
    if "onnx" in r:
        lines += _verdict(r, "", "ONNX Runtime")
    if "tflite" in r:
        lines += _verdict(r, "tflite_", "LiteRT")
    return "\n".join(lines)


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m nas.export", description=__doc__.strip().splitlines()[0], config_file=True)
    p.add_argument("spec", help="architecture spec: a YAML file or a published one by name")
    p.add_argument("--onnx", help="output .onnx path")
    p.add_argument("--tflite", help="output .tflite path (needs the optional extra 'tflite')")
    p.add_argument("--int8", action="store_true", help="write static int8 models (ONNX QDQ, fully int8 TFLite)")
    p.add_argument("--verify", action="store_true",
                   help="compare each runtime with torch (float: max |diff| <= 1e-4; int8: reported)")
    p.add_argument("--weights", help="state_dict (.pt) to export instead of random weights")
    p.add_argument("--threads", type=THREADS, default=1, help="runtime intra-op threads (default 1)")
    p.add_argument("--runs", type=positive_int, default=50, help="timed runs (default 50, at least 30)")
    p.add_argument("--no-time", action="store_true", help="skip the latency measurement")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    c = p.add_argument_group("int8 calibration (with --int8)")
    c.add_argument("--calibration", choices=("random", "data"),
                   help="random normal input (the default for random weights) or proxy-task images (the "
                        "default with --weights, --data or --dataset)")
    c.add_argument("--data", metavar="PATH", help="calibration data set directory (default: Fashion-MNIST)")
    c.add_argument("--dataset", choices=DATASETS, help="its format (default: detected from --data)")
    c.add_argument("--calibration-images", type=positive_int,
                   help=f"calibration inputs (default {DATA_CALIBRATION_IMAGES} images, "
                        f"{RANDOM_CALIBRATION_INPUTS} random inputs)")
    add_spec_limit_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if not args.onnx and not args.tflite:
        p.error("give --onnx OUT.onnx, --tflite OUT.tflite or both")
    for flag in ("onnx", "tflite"):
        value = getattr(args, flag)
        if value is not None and not value.strip():
            p.error(f"argument --{flag}: empty path")
    if args.onnx and args.tflite and Path(args.onnx).resolve() == Path(args.tflite).resolve():
        p.error("arguments --onnx and --tflite: the same path")
    if args.runs < 30:
        p.error(f"argument --runs: at least 30 timed runs, got {args.runs}")
    given = [f"--{n.replace('_', '-')}" for n in ("calibration", "data", "dataset", "calibration_images")
             if getattr(args, n) is not None]
    if given and not args.int8:
        p.error(f"argument {given[0]}: calibrates an int8 model, give --int8")
    if args.calibration == "random" and (args.data or args.dataset):
        p.error("argument --calibration random: --data/--dataset name calibration images")
    for flag in ("onnx", "tflite"):
        if getattr(args, flag):
            _check_output(getattr(args, flag), f"--{flag}")
    if args.tflite:
        tflite_export.require_tflite("--tflite")
    with spec_limits(args.max_params, args.max_macs):
        result = export(args)  # a failed check: exit 1
    emit(result, args.json, _human)
    return 0


if __name__ == "__main__":
    run_main(main)
