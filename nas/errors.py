"""The one error type for mistakes a user can make.

Every command turns a `UserError` into one line on stderr and exit status 2; anything else is a bug
and keeps its traceback.
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

    def located(self, source: str, field: str) -> "UserError":
        """This error, placed at `source`/`field` unless it already names a file of its own."""
        if self.source and not self.source.startswith("--"):
            return self
        return UserError(self.message, source=source, field=field)
