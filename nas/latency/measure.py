"""What a host timing depends on: the fingerprint a host table is measured under.

The sessions and the timing loop are nas.export.timing's (the export checks time with them too).
"""
from __future__ import annotations

import os
import platform

import onnxruntime as ort

from nas.export.timing import PROVIDER


def host_fingerprint(threads: int) -> dict:
    """What a host timing depends on; a table measured elsewhere must not be used silently."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "runtime": f"onnxruntime {ort.__version__}",
        "provider": PROVIDER,
        "threads": threads,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
