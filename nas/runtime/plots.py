"""Figures for the reports: pyplot without a display, and a figure written whole or not at all."""
from __future__ import annotations

from pathlib import Path

from nas.runtime.files import atomic_write


def pyplot():
    """matplotlib's pyplot on the Agg backend (reports are written on machines without a display)."""
    import matplotlib  # deferred: matplotlib takes ~1 s to load, for plots only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: as above

    return plt


def save_figure(fig, path: Path) -> Path:
    """Lay `fig` out, write it to `path` (its format from the suffix) atomically, and close it."""
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=110))
    pyplot().close(fig)
    return path
