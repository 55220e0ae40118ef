"""Latency devices by name: `host` (this machine, measured lazily), `pixel1` (calibrated from the
paper's end-to-end timings) and any table or calibrated model under latency_tables/."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nas.runtime.errors import UserError
from nas.latency.measure import host_fingerprint
from nas.latency.ops import Op, ops_of
from nas.latency.predict import Prediction
from nas.latency.table import LatencyTable
from nas.runtime.paths import TABLES_DIR
from nas.core.spec import ArchSpec
from nas.runtime.files import load_yaml_file

FINGERPRINT_KEYS = ("cpu", "cores", "runtime", "provider", "threads")


class TableDevice:
    """Sum of per-op medians from a lookup table, corrected for whole-network effects.

    An op timed alone runs with hot caches and pays one session call; inside a network it does
    not. `calibration` (fitted on whole networks measured in the same build) maps the sum to the
    network: ms = scale * sum + offset_ms. p10 / p90 come from the ops' p10 / p90 sums (a
    pessimistic, fully correlated spread).
    """

    def __init__(self, name: str, table: LatencyTable,
                 measure_missing: Callable[[list[Op]], None] | None = None):
        self.name = name
        self.table = table
        self.measure_missing = measure_missing
        self._rows: dict[str, tuple[float, float, float]] = {}
        self._refresh()

    def _refresh(self) -> None:
        self._rows = {k: (t.median, t.p10, t.p90) for k, t in self.table.ops.items()}

    @property
    def calibrated(self) -> bool:
        return bool(self.table.calibration)

    def ensure(self, specs: Sequence[ArchSpec]) -> list[Op]:
        """Measure (or refuse) the ops these specs need that the table lacks; never guess."""
        return self.ensure_ops([op for spec in specs for op in ops_of(spec)])

    def ensure_ops(self, ops: Sequence[Op]) -> list[Op]:
        needed = {op.key: op for op in ops}
        missing = [needed[k] for k in self.table.missing(needed)]
        if missing:
            if self.measure_missing is None:
                where = self.table.path or self.name
                raise UserError(
                    f"{len(missing)} op(s) are not in the table, e.g. {missing[0].key!r}: measure them on the "
                    f"device (python -m nas.latency export-ops ... then import)", source=str(where))
            self.measure_missing(missing)
            self._refresh()
        return missing

    def raw_sum(self, spec: ArchSpec) -> np.ndarray:
        rows = self._rows
        try:
            return np.sum([rows[op.key] for op in ops_of(spec)], axis=0)
        except KeyError:
            self.ensure([spec])
            self._refresh()  # the table may have grown behind this device (a build in progress)
            return np.sum([self._rows[op.key] for op in ops_of(spec)], axis=0)

    def predict_many(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        if not self.calibrated:
            raise UserError("table has no whole-network calibration yet: run "
                            "`python -m nas.latency build --device host` (or calibrate it)",
                            source=str(self.table.path or self.name))
        sums = np.array([self.raw_sum(s) for s in specs], dtype=float).reshape(len(specs), 3)
        c = self.table.calibration
        return sums * c["scale"] + c["offset_ms"]

    def predict(self, spec: ArchSpec) -> Prediction:
        ms, p10, p90 = self.predict_many([spec])[0]
        return Prediction(float(ms), float(p10), float(p90))


def host_table_path(threads: int = 1) -> Path:
    return TABLES_DIR / ("host.yaml" if threads == 1 else f"host-t{threads}.yaml")


def load_host_table(threads: int = 1, path: Path | None = None, force_new: bool = False) -> LatencyTable:
    """This machine's table; one measured on another machine or runtime is refused, not used."""
    path = path or host_table_path(threads)
    here = {"name": "host", **host_fingerprint(threads), "batch": 1}
    if force_new or not path.exists():
        return LatencyTable(here, path=path)
    table = LatencyTable.load(path)
    theirs = {k: table.device.get(k) for k in FINGERPRINT_KEYS}
    ours = {k: here[k] for k in FINGERPRINT_KEYS}
    if theirs != ours:
        diff = ", ".join(f"{k}: table {theirs[k]!r} vs here {ours[k]!r}" for k in FINGERPRINT_KEYS
                         if theirs[k] != ours[k])
        raise UserError(f"measured on another machine or runtime ({diff}); rebuild it with "
                        f"`python -m nas.latency build --device host --force`", source=str(path), field="device")
    return table


def host_device(threads: int = 1, lazy: bool = True, path: Path | None = None) -> TableDevice:
    """The host: ops missing from its table are measured on demand and saved (lazy fill)."""
    from nas.latency.build import measure_ops

    table = load_host_table(threads, path)

    def measure(missing: list[Op]) -> None:
        print(f"measuring {len(missing)} new op(s) on the host ...", file=sys.stderr)
        for key, timing in measure_ops(missing, threads=threads).items():
            table.add(key, timing)
        table.save()

    device = TableDevice("host", table, measure if lazy else None)
    if lazy and not device.calibrated:
        from nas.latency.calibrate_host import calibrate_host_table
        print("calibrating the host table on whole networks ...", file=sys.stderr)
        calibrate_host_table(device, threads=threads)
    return device


def get_device(name: str, threads: int = 1):
    """A device by name: host, pixel1, a table/model under latency_tables/, or a path to one."""
    if not isinstance(name, str) or not name.strip():
        raise UserError("empty device name")
    if name == "host":
        return host_device(threads)
    path = Path(name) if name.endswith((".yaml", ".yml")) else TABLES_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in TABLES_DIR.glob("*.yaml") if not p.stem.endswith("_published"))
        raise UserError(f"unknown device {name!r} (known: host, {', '.join(k for k in known if k != 'host')}; "
                        f"or a path to a table)")
    data = load_yaml_file(path)
    if isinstance(data, dict) and "ops" in data:
        return TableDevice(path.stem, LatencyTable.from_dict(data, source=str(path)))
    from nas.latency.calibrate import load_calibrated_device
    return load_calibrated_device(path)
