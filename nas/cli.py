"""Shared command-line plumbing: one-line errors, exit status 2, JSON output."""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Callable

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


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    """Print the human summary, or (with --json) one JSON object as the last line of stdout."""
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(human(result))


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's main, turning user errors into one stderr line and exit status 2."""
    try:
        code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
