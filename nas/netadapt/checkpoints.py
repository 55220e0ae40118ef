"""A NetAdapt run's directory: the append-only log (OUT/netadapt.jsonl) and the checkpoint of every iteration.

The log's first line is the start record, whose `identity` a resumed run must match; then one line
per iteration, then the final line. Files come first, then the line: a line in the log always has
its checkpoint (spec YAML and weights), so `--resume` continues from the last line with the same result.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from nas.runtime.jsonl import jsonable
from nas.core.spec import ArchSpec, save_spec, spec_from_dict
from nas.runtime.errors import UserError
from nas.runtime.files import load_state, save_state
from nas.runtime.jsonl import JsonlWriter, read_log

LOG_NAME = "netadapt.jsonl"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"steps": 5}} -> {"train.steps": 5}: a mismatch names the one setting that differs."""
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


class RunLog:
    """The log and checkpoints in `out`; `open` it, `append` lines, `close` it (or use `with`)."""

    def __init__(self, out: Path, name: str):
        self.out, self.name = Path(out), name  # `name`: the seed spec's, for the checkpoints' specs
        self.path = self.out / LOG_NAME
        self._writer: JsonlWriter | None = None

    def open(self, start: dict[str, Any], resume: bool) -> list[dict[str, Any]]:
        """The records so far (a new log: just `start`, written). A torn last line is skipped, and cut off
        before the next line is appended; a log of another run (identity) is a UserError naming the difference."""
        if resume and self.path.exists():
            records, _ = read_log(self.path)
            if not records or records[0].get("type") != "start":
                raise UserError("not a NetAdapt log (no start record)", source=str(self.path))
            theirs, ours = _flatten(records[0]["identity"]), _flatten(jsonable(start["identity"]))
            if theirs != ours:
                diff = ", ".join(f"{k}: log {theirs.get(k)!r} vs now {ours.get(k)!r}"
                                 for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k))
                raise UserError(f"cannot resume a different run ({diff})", source=str(self.path))
            self._writer = JsonlWriter(self.path)  # cuts a torn tail, so that new lines follow whole ones
            return records
        self._writer = JsonlWriter(self.path)
        self.append(start)
        return [start]

    def append(self, record: Mapping[str, Any]) -> None:
        """One line, on disk before the next step (a crash leaves at most a torn last line); NaN as null."""
        if self._writer is None:
            raise RuntimeError("the NetAdapt log is not open")
        self._writer.write(jsonable(dict(record)))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, k: int, spec: ArchSpec, state: Mapping[str, Any]) -> dict[str, str]:
        """Iteration `k`'s weights and spec; returns their paths relative to `out` (for the log line)."""
        rel = {"spec": f"checkpoints/iter{k:03d}.yaml", "weights": f"checkpoints/iter{k:03d}.pt"}
        save_state(state, self.out / rel["weights"])
        save_spec(replace(spec, name=f"{self.name}-netadapt-{k}"), self.out / rel["spec"])
        return rel

    def load_checkpoint(self, record: Mapping[str, Any]) -> tuple[ArchSpec, dict]:
        spec = replace(spec_from_dict(record["spec"], source=str(self.path)), name=self.name)
        return spec, load_state(self.out / record["checkpoint"]["weights"])

    def spec_of(self, record: Mapping[str, Any]) -> ArchSpec:
        return spec_from_dict(record["spec"], source=str(self.path))
