"""Latency tables and devices.

    python -m nas.latency build --device host|host-litert [--precision fp32|int8] [--space S ...] [--threads N] [--force]
    python -m nas.latency validate --device host|host-litert [--precision fp32|int8] --samples N [--space S] [--json]
    python -m nas.latency export-ops --space S --out DIR [--format onnx|tflite] [--precision fp32|int8]
    python -m nas.latency import --device NAME --timings FILE
    python -m nas.latency calibrate --device NAME --measurements FILE
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nas.runtime.cli import (ArgumentParser, THREADS, add_spec_limit_flags, emit, int_in, positive_int,
                             resume_command, run_main, seed_int, set_resume_hint, signals_held)
from nas.runtime.errors import UserError
from nas.latency import calibrate
from nas.runtime.files import atomic_write_text, load_json_file
from nas.runtime.log import progress_enabled
from nas.core.space import load_space
from nas.runtime.lock import hand_down, lock_file
from nas.core.spec_file import spec_limits

# torch, onnxruntime and friends load inside the commands that need them: a mistyped flag
# answers at once.
DEFAULT_SPACE = "mobilenetv3_large"


def _host_backend(args, verb: str):
    """The backend a build or validate measures with: --device host|host-litert (a ':int8' suffix
    or --precision int8 for int8 models)."""
    from nas.latency.backend import PRECISIONS, make_backend  # deferred: loads torch

    base, _, suffix = args.device.partition(":")
    if base not in ("host", "host-litert") or (suffix and suffix not in PRECISIONS):
        args.parser.error(f"argument --device: {verb} measures this machine, so the device is 'host' or "
                          f"'host-litert' (got {args.device!r}); for another device use export-ops + import, "
                          f"or calibrate")
    if suffix and args.precision and suffix != args.precision:
        args.parser.error(f"argument --precision: {args.precision} contradicts --device {args.device}")
    return make_backend(base, args.precision or suffix or "fp32")


def _bar(total: int, desc: str):
    from tqdm import tqdm  # deferred: tqdm takes ~0.1 s to load

    return tqdm(total=total, desc=desc, unit="op", leave=False, mininterval=0.5, disable=not progress_enabled())


def cmd_build(args) -> dict:
    backend = _host_backend(args, "build")
    from nas.latency.devices import load_host_table  # deferred: loads torch
    from nas.latency.table import build_lock_path  # deferred: loads onnxruntime

    start = time.perf_counter()
    # Bad input fails before the lock file is made beside the table.
    table = load_host_table(args.threads, path=args.table, force_new=args.force, backend=backend)
    spaces = [load_space(s) for s in (args.space or [DEFAULT_SPACE])]
    try:
        table.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create its folder: {err.strerror or err}", source=str(table.path)) from None
    again = resume_command("python -m nas.latency", args.argv, drop=["--force"])
    with lock_file(build_lock_path(table.path), what="latency table build", source=str(table.path),
                   resume_hint=f"wait for that build to finish (it saves after every chunk), or stop it; "
                               f"then `{again}` measures only what is still missing"):
        if not args.force:  # a build that ended while this one started may have added ops
            table = load_host_table(args.threads, path=args.table, backend=backend)
        result = _build_locked(args, table, spaces, again, backend)
    # Where the time went: wall_s in all; convert_s converting ops and networks to model files,
    # time_s timing them (this process and the calibrating child together).
    return {**result, "wall_s": round(time.perf_counter() - start, 1)}


def _build_locked(args, table, spaces, again: str, backend) -> dict:
    from nas.latency.build import measure_ops  # deferred: loads torch
    from nas.latency.calibrate_host import calibrate_host_table, calibration_specs  # deferred: loads torch
    from nas.latency.devices import TableDevice  # deferred: loads torch
    from nas.latency.ops import ops_of, space_ops  # deferred: loads torch

    device = TableDevice(backend.device_name, table, backend=backend)
    cal_specs = [s for sp in spaces for s in calibration_specs(sp, args.calibration_samples, seed=0)]
    wanted = [op for sp in spaces for op in space_ops(sp)] + [op for s in cal_specs for op in ops_of(s)]
    missing = [op for op in {o.key: o for o in wanted}.values() if op.key not in table]
    replace = args.force  # the first save of a --force build replaces the old table; later ones merge
    with _bar(len(missing), "measuring ops") as bar:
        def keep(chunk):  # save after every chunk: an interrupted build keeps what it measured
            nonlocal replace
            for key, timing in chunk.items():
                table.add(key, timing)
            with signals_held():  # a Ctrl-C right after the save still gets the hint that names it
                table.save(merge=not replace)
                replace = False
                set_resume_hint(f"{again}  ({len(table)} ops kept in {table.path})")

        measure_ops(missing, threads=args.threads, chunk=args.chunk, on_chunk=keep, progress=bar.update,
                    backend=backend)
    table.save(merge=not replace)
    cost = backend.report()
    if missing:
        cal, child = _calibrate_in_fresh_process(args, table.path, backend)
        cost = {k: round(v + child.get(k, 0), 3) if isinstance(v, float) else v + child.get(k, 0)
                for k, v in cost.items()}
    else:
        with _bar(len(cal_specs), "calibrating on whole networks") as bar:
            cal = calibrate_host_table(device, args.threads, cal_specs, progress=bar.update)
        cost = backend.report()
    return {"device": backend.device_name, "precision": backend.precision, "table": str(table.path),
            "ops": len(table), "measured": len(missing), "spaces": [sp.name for sp in spaces],
            "calibration": cal, **cost}


def _calibrate_in_fresh_process(args, table_path, backend) -> tuple[dict, dict]:
    """Time the calibration networks in a new process. In the process that has just timed ~800
    op sessions, whole networks ran 3-5% slower than in any later process (validate, a search),
    which biased every prediction by that much (measured here: mean error +3..+6% vs -0.2%).
    The child reruns `build` under this build's lock, which it is handed down; its conversion and
    timing seconds come back with the calibration."""
    from nas.latency.table import LatencyTable, build_lock_path  # deferred: loads onnxruntime

    base = backend.device_name.partition(":")[0]
    cmd = [sys.executable, "-m", "nas.latency", "build", "--device", base, "--precision", backend.precision,
           "--table", str(table_path), "--threads", str(args.threads),
           "--calibration-samples", str(args.calibration_samples), "--json"]

    if not progress_enabled():  # --quiet reaches the child too: no bars from it either
        cmd.append("--quiet")
    for space in args.space or []:
        cmd += ["--space", space]
    env, fds = hand_down(build_lock_path(table_path))
    proc = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env, pass_fds=fds)
    try:
        child = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):  # the figures are a report; the calibration is in the table
        child = {}
    cost = {k: child[k] for k in ("convert_s", "time_s", "models_converted", "models_cached") if k in child}
    return LatencyTable.load(table_path).calibration, cost


def cmd_validate(args) -> dict:
    backend = _host_backend(args, "validate")

    from nas.latency.devices import host_device  # deferred: loads torch
    from nas.latency.validate import validate  # deferred: loads torch

    space = load_space(args.space)
    device = host_device(args.threads, path=args.table, backend=backend)
    rng = np.random.default_rng(args.seed)
    specs = [space.sample_spec(rng) for _ in range(args.samples)]
    with _bar(len(specs), "exporting networks") as bar:
        result = validate(device, specs, threads=args.threads, progress=bar.update)
    rows = result.pop("rows")
    if args.out:
        atomic_write_text(args.out, json.dumps({**result, "rows": rows}, indent=1))
        result["rows_file"] = str(args.out)
    return {"device": backend.device_name, "precision": backend.precision, "space": space.name,
            "seed": args.seed, **result, **backend.report()}


def cmd_export_ops(args) -> dict:
    from nas.latency.backend import make_backend  # deferred: loads torch
    from nas.latency.calibrate_host import calibration_specs  # deferred: loads torch
    from nas.latency.ops import ops_of, space_ops  # deferred: loads torch
    from nas.latency.portable import export_ops  # deferred: loads torch

    space = load_space(args.space)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError("exists and is not a directory", source=args.out, field="--out")
    backend = make_backend("litert" if args.format == "tflite" else "onnxruntime", args.precision or "fp32")
    ops = space_ops(space)
    networks = [] if args.no_networks else calibration_specs(space, args.calibration_samples, seed=0)
    ops += [op for s in networks for op in ops_of(s)]
    with _bar(len(ops) + len(networks), "exporting") as bar:
        out = export_ops(ops, Path(args.out), networks, progress=bar.update, backend=backend)
    if args.format == "tflite":
        how = (f"run `python3 {out}/time_tflite.py adb` on the computer the phone is plugged into (adb and "
               f"TFLite's benchmark_model), or `python3 time_tflite.py interpreter` on a board with Python")
    else:
        how = f"copy {out} to the device, run `python3 time_ops.py` there"
    return {"out": str(out), "format": args.format, "precision": backend.precision,
            "ops": len({o.key for o in ops}), "networks": len(networks), **backend.report(),
            "next": f"{how}, then `python -m nas.latency import --device NAME --timings timings.json`"}


def cmd_import(args) -> dict:
    from nas.latency.devices import table_out  # deferred: loads torch
    from nas.latency.portable import import_timings  # deferred: loads torch

    out = table_out(args.device, args.out, args.force)
    data = load_json_file(args.timings)
    table = import_timings(data, str(args.timings), args.device)
    table.save(out)
    return {"device": args.device, "table": str(out), "ops": len(table), "calibration": table.calibration}


def _human(r: dict) -> str:
    return "\n".join(f"{k}: {v}" for k, v in r.items())


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m nas.latency", description="Latency tables and devices.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    b = sub.add_parser("build", help="measure every op a space can produce on this host", config_file=True)
    b.add_argument("--space", action="append", help=f"search space name or YAML (repeatable; default {DEFAULT_SPACE})")
    b.add_argument("--threads", type=THREADS, default=1)
    b.add_argument("--force", action="store_true", help="start a fresh table instead of completing the existing one")
    b.add_argument("--calibration-samples", type=positive_int, default=24,
                   help="random networks of each space timed whole to calibrate the op sum (default 24)")
    b.add_argument("--chunk", type=positive_int, default=64, help="ops measured (and saved) together (default 64)")
    b.set_defaults(run=cmd_build)

    v = sub.add_parser("validate", help="predicted vs measured latency of random networks on this host",
                       config_file=True)
    v.add_argument("--samples", type=int_in(1, 100_000), default=50)
    v.add_argument("--space", default=DEFAULT_SPACE)
    v.add_argument("--seed", type=seed_int, default=1, help="sampling seed (the build calibrates on seed 0)")
    v.add_argument("--threads", type=THREADS, default=1)
    v.add_argument("--out", help="write every sample's predicted and measured ms to this JSON file")
    v.set_defaults(run=cmd_validate)

    e = sub.add_parser("export-ops", help="write every op of a space as ONNX or TFLite, with a standalone timer",
                       config_file=True)
    e.add_argument("--space", default=DEFAULT_SPACE)
    e.add_argument("--out", required=True)
    e.add_argument("--format", choices=("onnx", "tflite"), default="onnx",
                   help="onnx (time_ops.py, ONNX Runtime) or tflite (time_tflite.py: benchmark_model over adb, "
                        "or the LiteRT interpreter); default onnx")
    e.add_argument("--calibration-samples", type=positive_int, default=8,
                   help="random networks also exported whole, to calibrate the op sum (default 8)")
    e.add_argument("--no-networks", action="store_true", help="ops only (the imported table stays uncalibrated)")
    e.set_defaults(run=cmd_export_ops)

    i = sub.add_parser("import", help="turn time_ops.py's timings.json into a device table", config_file=True)
    i.add_argument("--device", required=True, type=calibrate.check_device_name,
                   help="name of the new device (latency_tables/NAME.yaml)")
    i.add_argument("--timings", required=True)
    i.add_argument("--out", help="table path (default latency_tables/NAME.yaml)")
    i.add_argument("--force", action="store_true", help="write even over, or in front of, a shipped device table")
    i.set_defaults(run=cmd_import)

    add_spec_limit_flags(calibrate.register(sub))  # its measurements name spec files

    for name in ("build", "validate"):
        sub.choices[name].add_argument("--table", type=Path,
                                       help="host table file (default: this machine's, in the user cache)")
        sub.choices[name].add_argument("--device", default="host",
                                       help="host (ONNX Runtime) or host-litert (LiteRT interpreter, XNNPACK)")
    for name in ("build", "validate", "export-ops"):
        sub.choices[name].add_argument("--precision", choices=("fp32", "int8"), default=None,
                                       help="fp32 (default) or int8 models (static int8, random calibration)")
    for sp in sub.choices.values():
        if "--json" not in sp._option_string_actions:
            sp.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    args.parser = p
    args.argv = sys.argv[1:] if argv is None else argv
    if hasattr(args, "func"):  # a subcommand that prints its own output
        with spec_limits(getattr(args, "max_params", None), getattr(args, "max_macs", None)):
            return args.func(args) or 0
    result = args.run(args)
    emit(result, args.json, getattr(args, "human", _human))
    return 0


if __name__ == "__main__":
    run_main(main)
