"""Latency devices by name: `host` and `host-litert` (this machine with ONNX Runtime or the LiteRT
interpreter, measured lazily; `:int8` for int8 models), `pixel1` (calibrated from the paper's
end-to-end timings), `note10` (a phone's measured per-layer tables, one per input resolution),
`zcu102` and `vck190` (FPGAs: Accel-NASBench's measured latencies of its space, a model fitted to
them elsewhere) and any table or calibrated model under latency_tables/."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from nas.runtime.errors import UserError
from nas.runtime.registry import DEVICES
from nas.latency.backend import Backend, OnnxBackend, make_backend, parse_host_name
from nas.latency.measure import host_fingerprint
from nas.latency.ops import Op, ops_of
from nas.latency.predict import Prediction
from nas.latency.table import LatencyTable
from nas.runtime.paths import TABLES_DIR, USER_TABLES_DIR, cache_dir
from nas.core.spec import ArchSpec
from nas.runtime.files import load_yaml_file
from nas.core.check import MAX_RESOLUTION, MIN_RESOLUTION, Checker
from nas.latency import build
from nas.latency.calibrate_host import calibrate_host_table

log = logging.getLogger(__name__)

FINGERPRINT_KEYS = ("cpu", "cores", "runtime", "provider", "threads", "converter", "precision")
# What a table written before these keys existed was measured with.
_FINGERPRINT_DEFAULTS = {"precision": "fp32"}


class TableDevice:
    """Sum of per-op medians from a lookup table, corrected for whole-network effects.

    An op timed alone runs with hot caches and pays one session call; inside a network it does
    not. `calibration` (fitted on whole networks measured in the same build) maps the sum to the
    network: ms = scale * sum + offset_ms. p10 / p90 come from the ops' p10 / p90 sums (a
    pessimistic, fully correlated spread).
    """

    def __init__(self, name: str, table: LatencyTable,
                 measure_missing: Callable[[list[Op]], None] | None = None, backend: Backend | None = None):
        self.name = name
        self.table = table
        self.measure_missing = measure_missing
        self.backend = backend  # how this device's networks are measured (host devices only)
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
            raise UserError(f"table has no whole-network calibration yet: run "
                            f"`{_build_command(self.backend)}` (or calibrate it)",
                            source=str(self.table.path or self.name))
        sums = np.array([self.raw_sum(s) for s in specs], dtype=float).reshape(len(specs), 3)
        c = self.table.calibration
        return sums * c["scale"] + c["offset_ms"]

    def predict(self, spec: ArchSpec) -> Prediction:
        ms, p10, p90 = self.predict_many([spec])[0]
        return Prediction(float(ms), float(p10), float(p90))


class ResolutionTableDevice:
    """Measured per-layer tables, one per input resolution: a network's latency is the sum of its layers
    in the table of its resolution (as once-for-all predicts its Note10 networks). The same layer
    geometry occurs at neighbouring resolutions and was timed in each, so the tables are not merged."""

    measure_missing = None  # a phone's tables: nothing is measured here

    def __init__(self, name: str, tables: Mapping[int, TableDevice], source: str):
        self.name, self.tables, self.source = name, dict(tables), source

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(sorted(self.tables))

    def table_for(self, resolution: int) -> TableDevice:
        if resolution not in self.tables:
            raise UserError(f"no table at input resolution {resolution} (tables: {list(self.resolutions)})",
                            source=self.source, field="resolution")
        return self.tables[resolution]

    def ensure_ops(self, ops: Sequence[Op]) -> list[Op]:
        """Refuse ops that no resolution's table holds (a stem names its resolution, so it is exact)."""
        known = set().union(*(t.table.ops for t in self.tables.values()))
        missing = [op for op in ops if op.key not in known]
        if missing:
            raise UserError(f"{len(missing)} op(s) are in none of its tables, e.g. {missing[0].key!r}",
                            source=self.source)
        return []

    def ensure(self, specs: Sequence[ArchSpec]) -> list[Op]:
        for spec in specs:
            self.table_for(spec.resolution).ensure([spec])
        return []

    def predict_many(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        out = np.zeros((len(specs), 3))
        for i, spec in enumerate(specs):
            out[i] = self.table_for(spec.resolution).raw_sum(spec)
        return out

    def predict(self, spec: ArchSpec) -> Prediction:
        ms, p10, p90 = self.predict_many([spec])[0]
        return Prediction(float(ms), float(p10), float(p90))


def load_resolution_device(path: Path, data: Mapping) -> ResolutionTableDevice:
    c = Checker(str(path))
    d = c.mapping(data, "", ("kind", "device", "unit", "tables", "n_tables"), ("kind", "device", "tables", "n_tables"))
    tables = c.mapping(d["tables"], "tables", tuple(d["tables"]) if isinstance(d["tables"], Mapping) else (), ())
    if d["n_tables"] != len(tables) or not tables:
        raise c.fail("n_tables", f"says {d['n_tables']!r} tables but the file lists {len(tables)} (truncated?)")
    loaded = {}
    for r, rel in tables.items():
        c.integer(r, f"tables.{r}", MIN_RESOLUTION, MAX_RESOLUTION)
        if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise c.fail(f"tables.{r}", f"expected a path inside {path.parent}, got {rel!r}")
        table = LatencyTable.load(path.parent / rel)
        if not table.calibration or table.calibration != {"scale": 1.0, "offset_ms": 0.0}:
            raise c.fail(f"tables.{r}", "a measured per-layer table sums its layers (calibration scale 1, offset 0)")
        loaded[r] = TableDevice(f"{path.stem}@{r}", table)
    return ResolutionTableDevice(path.stem, loaded, str(path))


def _build_command(backend: Backend | None) -> str:
    backend = backend or OnnxBackend()
    base = backend.device_name.partition(":")[0]
    precision = "" if backend.precision == "fp32" else f" --precision {backend.precision}"
    return f"python -m nas.latency build --device {base}{precision}"


def host_fingerprint_of(backend: Backend, threads: int) -> dict:
    return backend.fingerprint(host_fingerprint(threads))


def host_table_path(threads: int = 1, backend: Backend | None = None) -> Path:
    """This machine's table in the user cache, named by its fingerprint: never inside the package, and a
    new CPU, runtime, converter or precision gets a table of its own instead of a refusal."""
    backend = backend or OnnxBackend()
    key = hashlib.sha1(json.dumps(host_fingerprint_of(backend, threads), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"{backend.device_name.replace(':', '-')}-t{threads}-{key}.yaml"


def _fingerprint_view(device: dict) -> dict:
    return {k: device.get(k, _FINGERPRINT_DEFAULTS.get(k)) for k in FINGERPRINT_KEYS}


def _shipped_host_table(threads: int, here: dict) -> LatencyTable | None:
    """A host table for this very machine under latency_tables/ (an older checkout wrote them there):
    a read-only seed, so it is not measured again; what it learns is saved to the cache."""
    path = TABLES_DIR / ("host.yaml" if threads == 1 else f"host-t{threads}.yaml")
    if not path.is_file():
        return None
    try:
        table = LatencyTable.load(path)
    except UserError:  # a broken seed is no worse than none: the cache table is measured afresh
        return None
    if _fingerprint_view(table.device) != _fingerprint_view(here):
        return None
    log.debug("host table seeded from %s", path)
    return table


def load_host_table(threads: int = 1, path: Path | None = None, force_new: bool = False,
                    backend: Backend | None = None) -> LatencyTable:
    """This machine's table; one measured on another machine, runtime or precision is refused, not used."""
    backend = backend or OnnxBackend()
    here = {"name": backend.device_name, **host_fingerprint_of(backend, threads), "batch": 1}
    if path is None:
        path = host_table_path(threads, backend)
        shipped = backend.device_name == "host" and not force_new and not path.exists()
        seed = _shipped_host_table(threads, here) if shipped else None
        if seed is not None:
            seed.path = path
            return seed
    if force_new or not path.exists():
        return LatencyTable(here, path=path)
    table = LatencyTable.load(path)
    theirs, ours = _fingerprint_view(table.device), _fingerprint_view(here)
    if theirs != ours:
        diff = ", ".join(f"{k}: table {theirs[k]!r} vs here {ours[k]!r}" for k in FINGERPRINT_KEYS
                         if theirs[k] != ours[k])
        raise UserError(f"measured on another machine, runtime or precision ({diff}); rebuild it with "
                        f"`{_build_command(backend)} --force`", source=str(path), field="device")
    return table


def host_device(threads: int = 1, lazy: bool = True, path: Path | None = None,
                backend: Backend | None = None) -> TableDevice:
    """A host device: ops missing from its table are measured on demand and saved (lazy fill)."""
    backend = backend or OnnxBackend()
    table = load_host_table(threads, path, backend=backend)

    def measure(missing: list[Op]) -> None:
        log.info("measuring %d new op(s) on %s ...", len(missing), backend.device_name)
        for key, timing in build.measure_ops(missing, threads=threads, backend=backend).items():
            table.add(key, timing)
        table.save(merge=True)  # another process may be filling the same table

    device = TableDevice(backend.device_name, table, measure if lazy else None, backend=backend)
    if lazy and not device.calibrated:
        log.info("calibrating the %s table on whole networks ...", backend.device_name)
        calibrate_host_table(device, threads=threads)
    return device


def device_file(name: str) -> Path:
    """A named device's file: the user's ./latency_tables/NAME.yaml first, then the shipped one; a
    user's table that shadows a shipped one is named on stderr (it changes every prediction)."""
    user, shipped = USER_TABLES_DIR / f"{name}.yaml", TABLES_DIR / f"{name}.yaml"
    if user.is_file():
        if shipped.is_file() and user.resolve() != shipped.resolve():
            log.warning("%s replaces the shipped %s device (%s)", user, name, shipped)
        return user
    return shipped


def table_out(name: str, out: str | None, force: bool) -> Path:
    """Where `nas.latency import` / `calibrate` write NAME's table: `out`, else
    ./latency_tables/NAME.yaml; never over, or in front of, a table the package ships unless forced."""
    path = Path(out) if out else USER_TABLES_DIR / f"{name}.yaml"
    shipped = TABLES_DIR / path.name if out else TABLES_DIR / f"{name}.yaml"
    over = shipped.is_file() and path.resolve() == shipped.resolve()
    if not force and (over or (not out and shipped.is_file())):
        raise UserError(f"{name!r} names a device the package ships ({shipped}): choose another name, or "
                        f"--force to {'replace it' if over else 'put your table in front of it'}",
                        setting="out" if out else "device")
    return path


def get_device(name: str, threads: int = 1):
    """A device by name: one registered in `DEVICES` (host and its variants, the FPGAs zcu102 and
    vck190, a user's own), a table/model under ./latency_tables/ or shipped, or a path to one."""
    if not isinstance(name, str) or not name.strip():
        raise UserError("empty device name", setting="device")
    user_table = not name.endswith((".yaml", ".yml")) and (USER_TABLES_DIR / f"{name}.yaml").is_file()
    if DEVICES.accepts(name) and not user_table:
        return DEVICES.lookup(name)(name, threads)
    path = Path(name) if name.endswith((".yaml", ".yml")) else device_file(name)
    if not path.exists():
        tables = sorted({p.stem for d in (USER_TABLES_DIR, TABLES_DIR) for p in d.glob("*.yaml")
                         if not p.stem.endswith("_published") and not p.stem.startswith("host")})
        raise UserError(f"unknown device {name!r} (known: host, {', '.join(tables)}; also "
                        f"{', '.join(n for e in map(DEVICES.entry, DEVICES) for n in e.meta.get('variants', (e.name,)) if n != 'host')}"
                        f"; or a path to a table)", setting="device")
    return load_device_file(name, path)


def load_device_file(name: str, path: Path):
    """A device from its file: a per-op table, a table per resolution, or a calibrated model."""
    data = load_yaml_file(path)
    log.debug("device %s: %s from %s", name, "op table" if isinstance(data, dict) and "ops" in data
              else "calibrated model", path)
    if isinstance(data, dict) and "ops" in data:
        return TableDevice(path.stem, LatencyTable.from_dict(data, source=str(path)))
    if isinstance(data, dict) and data.get("kind") == "per_resolution":
        return load_resolution_device(path, data)
    from nas.latency.calibrated import load_calibrated_device  # deferred: loads scipy
    return load_calibrated_device(path)


@DEVICES.register("host", pattern=r"host(-litert)?(:.*)?",  # a bad precision: parse_host_name says which
                  help="this machine, per-op tables timed here with ONNX Runtime; host:int8, host-litert (LiteRT), "
                       "host-litert:int8 time the same networks another way",
                  variants=("host", "host:int8", "host-litert", "host-litert:int8"))
def _host(name: str, threads: int = 1):
    return host_device(threads, backend=make_backend(*parse_host_name(name)))
