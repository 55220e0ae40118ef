"""Measurement files: end-to-end timings a calibrated device is fitted to.

YAML (`device`, `unit`, `measurements: [{spec, ms, source, network}]`) or CSV (columns spec, ms,
source, network); each row names a spec file, found relative to the file, the package data or the
repository. Errors name the file and the row's field.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from nas.core.check import Checker
from nas.core.spec import ArchSpec
from nas.core.spec_file import load_spec
from nas.runtime.errors import UserError
from nas.runtime.files import load_yaml_file, read_text_file
from nas.runtime.paths import DATA_ROOT, ROOT

UNIT = "ms"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measurement:
    spec_path: str     # as written in the file
    spec: ArchSpec
    ms: float
    source: str
    label: str


def _resolve(path_text: str, base: Path) -> Path | None:
    p = Path(path_text).expanduser()
    if p.is_absolute():
        return p if p.is_file() else None
    for root in (base, DATA_ROOT, ROOT):
        if (root / p).is_file():
            return root / p
    return None


def _rows_from_csv(path: Path, c: Checker) -> list[dict]:
    text = read_text_file(path, "a CSV file")  # missing, a directory, unreadable, too large: as for YAML
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise UserError(f"cannot read CSV: {err}", source=str(path)) from None
    for i, row in enumerate(rows):
        if None in row:
            raise c.fail(f"row {i + 2}", "more cells than header columns")
        if "ms" in row:
            try:
                row["ms"] = float(row["ms"])
            except (TypeError, ValueError):
                pass  # reported below as a bad value with its field
    return rows


def load_measurements(path: str | os.PathLike) -> tuple[dict, list[Measurement]]:
    """(device description, measurements) of a YAML or CSV file; errors name the file and field."""
    p = Path(path)
    c = Checker(str(p))
    if p.suffix.lower() == ".csv":
        device, rows = {}, _rows_from_csv(p, c)
    else:
        data = load_yaml_file(p)
        if isinstance(data, Mapping) and data.get("kind") == "calibrated":
            raise c.fail("kind", "this is a calibrated device; --measurements takes the timings it was fitted to")
        d = c.mapping(data, "", ("device", "unit", "measurements"), ("measurements",))
        if d.get("unit", UNIT) != UNIT:
            raise c.fail("unit", f"expected 'ms', got {d['unit']!r}")
        device = d.get("device") or {}
        if not isinstance(device, Mapping):
            raise c.fail("device", "expected a mapping describing the device")
        rows = d["measurements"]
    if not isinstance(rows, list) or not rows:
        raise c.fail("measurements", "expected a non-empty list of {spec, ms, source}")
    out, seen = [], {}
    for i, row in enumerate(rows):
        f = f"measurements[{i}]"
        r = c.mapping(row, f, ("spec", "ms", "source", "network"), ("spec", "ms"))
        c.text(r["spec"], f"{f}.spec", what="a spec path")
        ms = c.number(r["ms"], f"{f}.ms", lo=0, above=True, what="a finite latency", unit="in ms")
        found = _resolve(r["spec"].strip(), p.parent)
        if found is None:
            raise c.fail(f"{f}.spec", f"spec file not found: {r['spec']} (relative to the file or the repository)")
        try:
            spec = load_spec(found)
        except UserError as err:  # name the row that points at the broken spec, and the spec's own fault
            raise c.fail(f"{f}.spec", str(err)) from None
        key = spec.content_hash()
        if key in seen:
            raise c.fail(f"{f}.spec", f"same architecture as measurements[{seen[key]}] "
                         "(average repeated timings into one entry)")
        seen[key] = i
        out.append(Measurement(r["spec"].strip(), spec, ms, str(r.get("source", "")),
                               str(r.get("network") or spec.name)))
    log.debug("%s: %d measured network(s)", p, len(out))
    return dict(device), out

