"""Append-only JSON-lines logs (samples.jsonl, netadapt.jsonl, the audit's results.jsonl) that survive SIGKILL.

Each record is one line, a JSON object; a write (one record or a batch) is flushed and fsynced before
it returns. The one rule for damage: a torn last line (the process died mid-write) never happened, so
readers skip it and every writer cuts it off before appending; a bad line before the last one is
damage no crash leaves, and reading it is a `UserError` naming the file and line.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from nas.runtime.errors import UserError
from nas.runtime.files import fsync_dir, open_no_follow


def jsonable(value: Any) -> Any:
    """A copy with NaN and infinities as None: strict JSON (`jq` and other parsers reject NaN)."""
    if isinstance(value, float) and not math.isfinite(value):  # numpy's float64 is a float too
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def read_log(path: str | os.PathLike) -> tuple[list[dict[str, Any]], bool]:
    """(the whole records, whether a torn last line was skipped); a missing file has none."""
    records, _, torn = _scan(Path(path))
    return records, torn


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    return read_log(path)[0]


def repair(path: str | os.PathLike) -> int:
    """Cut the file back to its last whole record; returns the number of records kept."""
    p = Path(path)
    records, keep, torn = _scan(p)
    if torn:
        with os.fdopen(open_no_follow(p, os.O_RDWR), "r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return len(records)


def append_jsonl(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append one record, opening and closing the log (which is read whole, for the torn-line rule):
    for short logs written a line now and then; keep a `JsonlWriter` open for long ones."""
    with JsonlWriter(path) as writer:
        writer.write(record)


def _scan(p: Path) -> tuple[list[dict[str, Any]], int, bool]:
    """(records, bytes they take, torn) of the file at `p`. Logs live in run folders: a symbolic link
    there is refused before anything reads through it (or a resume writes anything)."""
    try:
        with os.fdopen(open_no_follow(p, os.O_RDONLY), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0, False
    except IsADirectoryError:
        raise UserError("is a directory, expected a JSON-lines log", source=str(p)) from None
    except OSError as err:
        raise UserError(f"cannot read: {err.strerror or err}", source=str(p)) from None
    *whole, tail = data.split(b"\n")  # the tail after the last newline: b"" or a torn line
    records: list[dict[str, Any]] = []
    keep = 0
    for n, line in enumerate(whole, 1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            record = None
        if not isinstance(record, dict):
            if n == len(whole) and not tail:  # a last line cut short, then ended: torn all the same
                return records, keep, True
            raise UserError(f"line {n} is not a JSON object: the log is damaged", source=str(p))
        records.append(record)
        keep += len(line) + 1
    return records, keep, bool(tail)


class JsonlWriter:
    """Appends to a log, after cutting off a torn last line, so that new lines follow whole ones."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repair(self.path)
            new = not self.path.exists()
            self._f = os.fdopen(open_no_follow(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a",
                                encoding="utf-8")
            if new:  # the log's name on disk too: fsyncing its lines alone would not keep it after a power cut
                fsync_dir(self.path.parent)
        except OSError as err:
            raise UserError(f"cannot write: {err.strerror or err}", source=str(self.path)) from None

    def write(self, record: Mapping[str, Any]) -> None:
        self.write_many([record])

    def write_many(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append records, one line each, and fsync once: a batch of cheap evaluations would
        otherwise spend more time in fsync than in evaluating. Records must be strict JSON (no NaN)."""
        if not records:
            return
        text = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records)
        try:
            self._f.write(text)
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as err:  # a full disk, a read-only mount: one line; a torn line is cut on resume
            raise UserError(f"cannot write: {err.strerror or err}", source=str(self.path)) from None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

