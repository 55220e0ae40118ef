"""Latency lookup tables: one entry per op key with its timing statistics, and the device it was
measured on. Saved as YAML, written whole or not at all; a truncated or corrupt file is an error."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from nas.runtime.errors import UserError
from nas.latency.measure import Timing
from nas.runtime.files import atomic_write_text, load_yaml_file

UNIT = "ms"


class LatencyTable:
    def __init__(self, device: Mapping[str, Any], ops: Mapping[str, Timing] | None = None,
                 calibration: Mapping[str, float] | None = None, path: str | Path | None = None):
        self.device = dict(device)
        self.ops: dict[str, Timing] = dict(ops or {})
        self.calibration = dict(calibration) if calibration else None
        self.path = Path(path) if path else None

    def __contains__(self, key: str) -> bool:
        return key in self.ops

    def __len__(self) -> int:
        return len(self.ops)

    def get(self, key: str) -> Timing | None:
        return self.ops.get(key)

    def add(self, key: str, timing: Timing) -> None:
        self.ops[key] = timing

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

    def save(self, path: str | Path | None = None) -> Path:
        target = Path(path or self.path)
        atomic_write_text(target, self.to_yaml())
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatencyTable":
        data = load_yaml_file(path)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "LatencyTable":
        def fail(field: str, message: str) -> UserError:
            return UserError(message, source=source, field=field)

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
        ops_in = data["ops"]
        if not isinstance(ops_in, Mapping):
            raise fail("ops", "expected a mapping of op key -> timing")
        ops = {}
        for key, entry in ops_in.items():
            ops[str(key)] = timing_from_entry(entry, fail, f"ops[{key}]")
        if data["n_ops"] != len(ops):
            raise fail("n_ops", f"says {data['n_ops']} ops but the file holds {len(ops)} (file truncated or edited?)")
        calibration = data.get("calibration")
        if calibration is not None:
            if not isinstance(calibration, Mapping):
                raise fail("calibration", "expected a mapping")
            for k, v in calibration.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise fail(f"calibration.{k}", f"expected a finite number, got {v!r}")
            for k in ("scale", "offset_ms"):
                if k not in calibration:
                    raise fail(f"calibration.{k}", "missing (ms = scale * sum of ops + offset_ms)")
            if calibration["scale"] <= 0:
                raise fail("calibration.scale", f"must be > 0, got {calibration['scale']!r}")
        return cls(data["device"], ops, calibration, path=source)


def timing_from_entry(entry: Any, fail, field: str) -> Timing:
    if not isinstance(entry, Mapping):
        raise fail(field, "expected {median, p10, p90, n}")
    values = {}
    for name in ("median", "p10", "p90", "n"):
        v = entry.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise fail(f"{field}.{name}", f"expected a finite number > 0, got {v!r}")
        values[name] = v
    if not values["p10"] <= values["median"] <= values["p90"]:
        raise fail(field, f"needs p10 <= median <= p90, got {values['p10']}, {values['median']}, {values['p90']}")
    return Timing(float(values["median"]), float(values["p10"]), float(values["p90"]), int(values["n"]))

