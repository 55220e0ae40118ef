"""The one way core and latency read a user's file: a `Checker` that names the file and the field.

Every loader (specs, search spaces, latency tables, calibrated devices, measurement files) reads
its parsed YAML, CSV or JSON through one Checker, so every bad value is the same kind of error:
one `UserError` line, "FILE: FIELD: what was expected, got what".
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from nas.runtime.errors import UserError

# Bounds that reject absurd input before it allocates anything.
MAX_CHANNELS = 8192
MAX_RESOLUTION = 2048
MIN_RESOLUTION = 8
MAX_BLOCKS = 128
MAX_KERNEL = 11
MAX_CLASSES = 100_000
MAX_NAME = 200
# The whole network's totals: per-block bounds still admit 128 blocks of 8192 channels at 2048x2048,
# which no machine builds. Far above MobileNetV3-Large (5.5M params, 0.22G MACs) at 6x its width, the
# widest its head's bound allows (155M, 7.0G), or at 1024x1024 (4.4G MACs); a command that loads a
# spec file raises them with --max-params / --max-macs.
MAX_PARAMS = 10**9
MAX_MACS = 10**11


class Checker:
    """Reads a mapping field by field, naming the file and the field in every error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, message: str) -> UserError:
        return UserError(message, source=self.source, field=field)

    def mapping(self, value: Any, field: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> Mapping:
        """`value` as a mapping with only `allowed` keys and every `required` one."""
        if not isinstance(value, Mapping):
            raise self.fail(field or "top level", f"expected a mapping, got {kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(join(field, str(key)), f"unknown key (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in value:
                raise self.fail(join(field, key), "missing required key")
        return value

    def integer(self, value: Any, field: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"expected an integer, got {kind(value)} {value!r}")
        if not lo <= value <= hi:
            raise self.fail(field, f"must be between {lo} and {hi}, got {value}")
        return value

    def number(self, value: Any, field: str, lo: float | None = None, hi: float | None = None, *,
               above: bool = False, what: str = "a finite number", unit: str = "") -> float:
        """A finite int or float within [lo, hi] (lo excluded when `above`); the message reads
        'expected WHAT BOUND UNIT, got VALUE', e.g. 'expected a finite latency > 0 in ms'."""
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        ok = ok and (lo is None or (value > lo if above else value >= lo)) and (hi is None or value <= hi)
        if not ok:
            if lo is not None and hi is not None:
                bound = f" between {lo:g} and {hi:g}"
            elif lo is not None:
                bound = f" {'>' if above else '>='} {lo:g}"
            else:
                bound = f" <= {hi:g}" if hi is not None else ""
            raise self.fail(field, f"expected {what}{bound}{' ' + unit if unit else ''}, got {value!r}")
        return float(value)

    def text(self, value: Any, field: str, what: str = "a non-empty string") -> str:
        """A string with something in it besides blanks."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"expected {what}, got {kind(value)} {value!r}")
        return value

    def channels(self, value: Any, field: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            raise self.fail(field, f"channels must be > 0, got {value}")
        return self.integer(value, field, 1, MAX_CHANNELS)

    def kernel(self, value: Any, field: str) -> int:
        k = self.integer(value, field, 1, MAX_KERNEL)
        if k % 2 == 0:
            raise self.fail(field, f"kernel must be odd, got {k}")
        return k

    def stride(self, value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2):
            raise self.fail(field, f"stride must be 1 or 2, got {value!r}")
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(field, f"expected true or false, got {kind(value)} {value!r}")
        return value

    def choice(self, value: Any, field: str, options: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in options:
            raise self.fail(field, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def fraction(self, value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(field, f"expected a number, got {kind(value)} {value!r}")
        if not 0 <= value < 1:
            raise self.fail(field, f"must be in [0, 1), got {value}")
        return float(value)


def kind(value: Any) -> str:
    """How a value reads in an error: YAML's null, else its Python type."""
    return "null" if value is None else type(value).__name__


def join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
