"""The error types a command reports in one line: a user's mistake, and an export that failed its check.

Every command turns a `UserError` into one line on stderr and exit status 2; anything else is a bug
and keeps its traceback. Torch-free, so commands can name these before they import torch.
"""
from __future__ import annotations


class UserError(Exception):
    """A bad file, flag or request; the message names the file and field at fault."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.message = message
        self.source = source
        self.field = field
        where = ": ".join(p for p in (source, field) if p)
        super().__init__(f"{where}: {message}" if where else message)

    def located(self, source: str | None, field: str) -> "UserError":
        """This error, about a value that came from `source`/`field` (a config file's key, or a flag).

        An error about a file of its own (a broken table the value names) stays as it is; one that
        blames a flag (`--data`) is moved to where the value really came from, keeping what it names.
        """
        if self.source and not (self.field or "").startswith("--") and not self.source.startswith("--"):
            return self
        named = self.source if self.source and not self.source.startswith("--") else None
        return UserError(f"{named}: {self.message}" if named else self.message, source=source, field=field)


class VerificationError(RuntimeError):
    """ONNX Runtime disagrees with torch on an exported model: an exporter or runtime fault, not
    bad input (the command exits 1, not 2). Nothing has been written when it is raised."""
