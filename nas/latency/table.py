"""Latency lookup tables: one entry per op key with its timing statistics, and the device it was
measured on. Saved as YAML, written whole or not at all; a truncated or corrupt file is an error.

Several processes may fill one table at once (two searches measuring missing ops on the host, a
build): `save(merge=True)` takes a sibling lock file, re-reads the table and adds this process's new
entries to what the others wrote, so the last writer never drops another's measurements."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from nas.core.check import Checker
from nas.runtime.errors import UserError
from nas.export.timing import Timing
from nas.runtime.files import atomic_write_text, load_yaml_file
from nas.runtime.lock import wait_lock

UNIT = "ms"


class LatencyTable:
    def __init__(self, device: Mapping[str, Any], ops: Mapping[str, Timing] | None = None,
                 calibration: Mapping[str, float] | None = None, path: str | Path | None = None):
        self.device = dict(device)
        self.ops: dict[str, Timing] = dict(ops or {})
        self.calibration = dict(calibration) if calibration else None
        self.path = Path(path) if path else None
        # What a merged save writes over the file: the keys added since the table was read or saved,
        # and the calibration if it is not the one read (from_dict marks what came from the file).
        self._new: set[str] = set(self.ops)
        self._calibration_seen: dict | None = None

    def __contains__(self, key: str) -> bool:
        return key in self.ops

    def __len__(self) -> int:
        return len(self.ops)

    def get(self, key: str) -> Timing | None:
        return self.ops.get(key)

    def add(self, key: str, timing: Timing) -> None:
        self.ops[key] = timing
        self._new.add(key)

    def missing(self, keys: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(k for k in keys if k not in self.ops))

    # ---- files ---------------------------------------------------------------------------------
    def to_yaml(self) -> str:
        lines = [
            f"device: {json.dumps(self.device, sort_keys=True)}",
            f"unit: {UNIT}",
        ]
        if self.calibration:
            lines.append(f"calibration: {json.dumps(self.calibration, sort_keys=True)}")
        lines.append("ops:" if self.ops else "ops: {}")
        for key in sorted(self.ops):
            lines.append(f"  {json.dumps(key)}: {json.dumps(self.ops[key].as_dict())}")
        # Written last: a file cut short loses it, so truncation is detected on load.
        lines.append(f"n_ops: {len(self.ops)}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path | None = None, *, merge: bool = False) -> Path:
        """Write the table. `merge`: under the table's lock, first take in what other processes have
        written since it was read (their ops, and a calibration if this one did not change it); an
        unmerged save replaces the file (a fresh --force build, an import)."""
        target = Path(path or self.path)
        if not merge:
            atomic_write_text(target, self.to_yaml())
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            with wait_lock(lock_path(target)):
                if target.exists():
                    self._merge(LatencyTable.load(target))
                atomic_write_text(target, self.to_yaml())
        self.path = target
        self._new.clear()
        self._calibration_seen = self.calibration
        return target

    def _merge(self, on_disk: "LatencyTable") -> None:
        if on_disk.device != self.device:
            raise UserError("was replaced by a table of another device while this process was adding to it; "
                            "run again", source=str(on_disk.path), field="device")
        ops = dict(on_disk.ops)
        ops.update((k, self.ops[k]) for k in self._new)
        self.ops = ops
        if self.calibration == self._calibration_seen:
            self.calibration = on_disk.calibration

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatencyTable":
        data = load_yaml_file(path)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "LatencyTable":
        c = Checker(source)
        fail = c.fail

        if not isinstance(data, Mapping):
            raise fail("top level", "expected a latency table mapping (device, unit, ops, n_ops)")
        for key in data:
            if key not in ("device", "unit", "calibration", "ops", "n_ops"):
                raise fail(str(key), "unknown key (allowed: device, unit, calibration, ops, n_ops)")
        for key in ("device", "unit", "ops", "n_ops"):
            if key not in data:
                hint = " (file truncated?)" if key == "n_ops" else ""
                raise fail(key, f"missing required key{hint}")
        if not isinstance(data["device"], Mapping):
            raise fail("device", "expected a mapping describing the device")
        if data["unit"] != UNIT:
            raise fail("unit", f"expected 'ms', got {data['unit']!r}")
        calibration = data.get("calibration")  # before ops, as the file has it
        if calibration is not None:
            if not isinstance(calibration, Mapping):
                raise fail("calibration", "expected a mapping")
            for k, v in calibration.items():
                c.number(v, f"calibration.{k}")
            for k in ("scale", "offset_ms"):
                if k not in calibration:
                    raise fail(f"calibration.{k}", "missing (ms = scale * sum of ops + offset_ms)")
            if calibration["scale"] <= 0:
                raise fail("calibration.scale", f"must be > 0, got {calibration['scale']!r}")
        ops_in = data["ops"]
        if not isinstance(ops_in, Mapping):
            raise fail("ops", "expected a mapping of op key -> timing")
        ops = {}
        for key, entry in ops_in.items():
            ops[str(key)] = timing_from_entry(entry, c, f"ops[{key}]")
        if data["n_ops"] != len(ops):
            raise fail("n_ops", f"says {data['n_ops']} ops but the file holds {len(ops)} (file truncated or edited?)")
        table = cls(data["device"], ops, calibration, path=source)
        table._new.clear()
        table._calibration_seen = table.calibration
        return table


def lock_path(table: str | Path) -> Path:
    """The sibling file whose lock guards a table's read-merge-write (held for a moment)."""
    table = Path(table)
    return table.with_name(f".{table.name}.lock")


def build_lock_path(table: str | Path) -> Path:
    """The sibling file a `build` holds while it runs: one build of a table at a time, since two
    would time the same ops and each other's load."""
    table = Path(table)
    return table.with_name(f".{table.name}.build.lock")


def timing_from_entry(entry: Any, c: Checker, field: str) -> Timing:
    if not isinstance(entry, Mapping):
        raise c.fail(field, "expected {median, p10, p90, n}")
    values = {name: c.number(entry.get(name), f"{field}.{name}", lo=0, above=True)
              for name in ("median", "p10", "p90", "n")}
    if not values["p10"] <= values["median"] <= values["p90"]:
        raise c.fail(field, f"needs p10 <= median <= p90, got {values['p10']}, {values['median']}, {values['p90']}")
    return Timing(float(values["median"]), float(values["p10"]), float(values["p90"]), int(values["n"]))

