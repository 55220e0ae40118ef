"""Shared command-line plumbing: one-line errors, exit status 2, JSON output."""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from typing import Any, Callable, Sequence

from nas.errors import UserError

EXIT_USER_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (not usage + error) and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (rejects 0, negatives, NaN, inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be an integer > 0, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    """Print the human summary, or (with --json) one JSON object as the last line of stdout."""
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(human(result))


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
_resume_hint: str | None = None


def set_resume_hint(command: str | None) -> None:
    """The command that continues this run, printed if it is interrupted (Ctrl-C) from now on."""
    global _resume_hint
    _resume_hint = command


def resume_command(prog: str, argv: Sequence[str], add: Sequence[str] = (), drop: Sequence[str] = ()) -> str:
    """`prog argv...` with flags `add`ed (if missing) and `drop`ped: what reruns a command to resume it."""
    args = [a for a in argv if a not in drop] + [a for a in add if a not in argv]
    return shlex.join([*prog.split(), *args])


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's main: a user error is one stderr line and exit status 2; Ctrl-C says how to resume."""
    set_resume_hint(None)
    try:
        code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        hint = f"; continue with: {_resume_hint}" if _resume_hint else "; nothing was saved"
        print(f"\ninterrupted{hint}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code or 0)
