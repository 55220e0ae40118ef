"""The error types a command reports in one line: a user's mistake, and an export that failed its check.

Every command turns a `UserError` into one line on stderr and exit status 2; anything else is a bug
and keeps its traceback. Torch-free, so commands can name these before they import torch.
"""
from __future__ import annotations


def flag(key: str) -> str:
    """The command-line flag of a settings key: target_ms -> --target-ms."""
    return "--" + key.replace("_", "-")


class UserError(Exception):
    """A bad file, flag or request; the message names the file and field at fault.

    `source` is a file (or what stands for one: "reward", "spec NAME") and `field` a field inside it
    (`blocks[0]`, a config file's key). `setting` is the settings key the error blames (`target_ms`,
    `data`), as the Python API and config files spell it: a library never names a flag. A command
    shows it as the flag (`--target-ms`, see nas.runtime.cli.on_command_line), and
    `nas.runtime.settings.located` moves it to where the value came from (a config file's key).
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None,
                 setting: str | None = None):
        self.message = message
        self.source = source
        self.field = field
        self.setting = setting
        where = ": ".join(p for p in (source, setting, field) if p)
        super().__init__(f"{where}: {message}" if where else message)

    def reworded(self, message: str) -> "UserError":
        """This error, about the same file, field and setting, saying `message` (what it said, and more)."""
        return UserError(message, source=self.source, field=self.field, setting=self.setting)

    def located(self, source: str | None = None, field: str | None = None, setting: str | None = None) -> "UserError":
        """This error, about a value that came from `source`/`field` (a config file's key) or `setting`
        (a flag, an argument from Python, a default).

        An error about a file of its own (a broken table the value names) stays as it is; one that
        blames a setting (or no file at all) is moved to where the value really came from, keeping
        the file it names.
        """
        if self.source and self.setting is None:
            return self
        return UserError(f"{self.source}: {self.message}" if self.source else self.message, source=source,
                         field=field, setting=setting)


class VerificationError(RuntimeError):
    """ONNX Runtime disagrees with torch on an exported model: an exporter or runtime fault, not
    bad input (the command exits 1, not 2). Nothing has been written when it is raised."""
