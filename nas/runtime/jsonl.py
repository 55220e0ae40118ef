"""Append-only JSON-lines logs (samples.jsonl, netadapt.jsonl) that survive SIGKILL.

Each record is one line; a write (one record or a batch) is flushed and fsynced before it returns.
A reader skips a torn last line (the process died mid-write) and `repair` cuts it off before
appending again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return
    with open(p, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                return  # torn last line: never completed, so never happened
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                return


def repair(path: str | Path) -> int:
    """Cut the file back to its last complete record; returns the number of records kept."""
    p = Path(path)
    if not p.exists():
        return 0
    keep, count = 0, 0
    with open(p, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                json.loads(raw)
            except json.JSONDecodeError:
                break
            keep += len(raw)
            count += 1
    if keep != p.stat().st_size:
        with open(p, "r+b") as f:
            f.truncate(keep)
    return count


class JsonlWriter:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair(self.path)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.write_many([record])

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """Append records, one line each, and fsync once: a batch of cheap evaluations would
        otherwise spend more time in fsync than in evaluating."""
        if not records:
            return
        self._f.write("".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
