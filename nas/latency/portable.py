"""Tables for other devices: export every op as ONNX with a standalone timer, import its timings."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

from nas.core.check import Checker
from nas.runtime.errors import UserError
from nas.latency.build import op_onnx, spec_onnx
from nas.latency.calibrate_host import fit_scale_offset
from nas.latency.ops import Op, is_op_key, ops_of
from nas.latency.table import LatencyTable, timing_from_entry
from nas.core.spec import ArchSpec
from nas.runtime.files import atomic_write_bytes, atomic_write_text

TIMER = Path(__file__).with_name("standalone_timer.py")
log = logging.getLogger(__name__)


def export_ops(ops: Sequence[Op], out: Path, models: Sequence[ArchSpec] = (), progress=None) -> Path:
    """Write ops/*.onnx, whole networks for calibration, manifest.json and time_ops.py under `out`."""
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory", source=str(out), field="--out")
    entries = []
    for op in {op.key: op for op in ops}.values():
        name = f"onnx/op-{hashlib.sha1(op.key.encode()).hexdigest()[:12]}.onnx"
        if not (out / name).exists():
            atomic_write_bytes(out / name, op_onnx(op))
        entries.append({"kind": "op", "key": op.key, "file": name, "input_shape": list(op.input_shape)})
        if progress:
            progress(1)
    for spec in models:
        name = f"onnx/net-{spec.content_hash()}.onnx"
        if not (out / name).exists():
            atomic_write_bytes(out / name, spec_onnx(spec))
        entries.append({"kind": "network", "key": spec.to_string(), "file": name,
                        "input_shape": [1, 3, spec.resolution, spec.resolution],
                        "ops": [op.key for op in ops_of(spec)]})
        if progress:
            progress(1)
    atomic_write_text(out / "manifest.json", json.dumps({"version": 1, "entries": entries}, indent=1))
    shutil.copyfile(TIMER, out / "time_ops.py")
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
