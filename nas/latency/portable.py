"""Tables for other devices: export every op as ONNX or TFLite with a standalone timer, import its timings.

ONNX bundles carry time_ops.py (onnxruntime + numpy on the device). TFLite bundles carry
time_tflite.py, which times the ops with TFLite's benchmark_model over adb from the computer the phone
is plugged into (standard library only), or with the LiteRT interpreter on a board with Python."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

from nas.core.check import Checker
from nas.runtime.errors import UserError
from nas.latency.backend import Backend, OnnxBackend
from nas.latency.calibrate_host import fit_scale_offset
from nas.latency.ops import Op, is_op_key, ops_of
from nas.latency.table import LatencyTable, timing_from_entry
from nas.core.spec import ArchSpec
from nas.runtime.files import atomic_write_bytes, atomic_write_text

TIMER = Path(__file__).with_name("standalone_timer.py")
TFLITE_TIMER = Path(__file__).with_name("standalone_tflite_timer.py")
TIMER_NAMES = {"onnxruntime": "time_ops.py", "litert": "time_tflite.py"}
log = logging.getLogger(__name__)


def export_ops(ops: Sequence[Op], out: Path, models: Sequence[ArchSpec] = (), progress=None,
               backend: Backend | None = None) -> Path:
    """Write every op and the whole networks for calibration as model files (onnx/*.onnx, or
    tflite/*.tflite for the LiteRT backend), manifest.json and the matching timer under `out`."""
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory", source=str(out), setting="out")
    backend = backend or OnnxBackend()
    folder = backend.suffix.lstrip(".")
    # TFLite models take NHWC input (converted channels-last); ONNX ones NCHW.
    layout = (lambda n, c, h, w: [n, h, w, c]) if backend.runtime == "litert" else (lambda *shape: list(shape))
    entries = []
    # A bundle of another precision gets its own files ("-int8"), never the fp32 ones left in `out`.
    tag = "" if backend.precision == "fp32" else f"-{backend.precision}"
    for op in {op.key: op for op in ops}.values():
        name = f"{folder}/op-{hashlib.sha1(op.key.encode()).hexdigest()[:12]}{tag}{backend.suffix}"
        if not (out / name).exists():
            atomic_write_bytes(out / name, backend.op_model(op))
        entries.append({"kind": "op", "key": op.key, "file": name, "input_shape": layout(*op.input_shape)})
        if progress:
            progress(1)
    for spec in models:
        name = f"{folder}/net-{spec.content_hash()}{tag}{backend.suffix}"
        if not (out / name).exists():
            atomic_write_bytes(out / name, backend.spec_model(spec))
        entries.append({"kind": "network", "key": spec.to_string(), "file": name,
                        "input_shape": layout(1, 3, spec.resolution, spec.resolution),
                        "ops": [op.key for op in ops_of(spec)]})
        if progress:
            progress(1)
    manifest = {"version": 1, "format": folder, "precision": backend.precision, "entries": entries}
    if backend.runtime == "litert":
        manifest["converter"] = backend.converter()
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    timer = TFLITE_TIMER if backend.runtime == "litert" else TIMER
    shutil.copyfile(timer, out / TIMER_NAMES[backend.runtime])
    return out


def import_timings(data: Any, source: str, name: str) -> LatencyTable:
    """A table (with its whole-network calibration where networks were timed) from time_ops.py output."""
    c = Checker(source)
    fail = c.fail

    if not isinstance(data, dict) or "entries" not in data or not isinstance(data["entries"], list):
        raise fail("entries", "expected the JSON written by time_ops.py (a mapping with 'entries')")
    if data.get("unit", "ms") != "ms":
        raise fail("unit", f"expected 'ms', got {data.get('unit')!r}")
    device = data.get("device") if isinstance(data.get("device"), dict) else {}
    table = LatencyTable({**device, "name": name})
    networks = []
    for i, e in enumerate(data["entries"]):
        f = f"entries[{i}]"
        if not isinstance(e, dict):
            raise fail(f, f"expected a mapping with key, median, p10, p90, n; got {e!r}"[:200])
        if not isinstance(e.get("key"), str):
            raise fail(f"{f}.key", f"expected the op's key (a string), got {e.get('key')!r}")
        timing = timing_from_entry(e, c, f)
        if e.get("kind") != "network" and not is_op_key(e["key"]):
            raise fail(f"{f}.key", f"not an op key of this project: {e['key'][:80]!r}")
        if e.get("kind") == "network":
            networks.append((e, timing))
        else:
            table.add(e["key"], timing)
    if not table.ops:
        raise fail("entries", "no op timings")
    log.debug("%s: %d op timing(s), %d whole network(s)", source, len(table.ops), len(networks))
    if not networks:  # exported with --no-networks: predictions are plain op sums
        log.info("%s has no whole-network timings: the table stays uncalibrated", source)
    if networks:
        sums, wholes = [], []
        for e, timing in networks:
            keys = e.get("ops") or []
            if not keys or any(k not in table for k in keys):
                raise fail("entries", f"network {e['key'][:40]}... lists ops that were not timed")
            sums.append(sum(table.ops[k].median for k in keys))
            wholes.append(timing.median)
        table.calibration = fit_scale_offset(sums, wholes)
    return table
