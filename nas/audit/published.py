"""Published ImageNet top-1 as a second reference for the audit.

`load_published()` reads `search_spaces/reference/published/imagenet.yaml`: the zoo's networks with
their published top-1 and Pixel-1 latency. The audit ranks them by every proxy and reports, per
proxy, Kendall tau against published top-1 and the partial correlation at equal predicted Pixel-1
latency (`predicted_latency_ms`; the statistics are nas.audit.ranks').
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from nas.core.check import Checker
from nas.core.spec_file import load_spec
from nas.runtime.files import load_yaml_file
from nas.runtime.paths import REFERENCE_DIR

PUBLISHED_FILE = REFERENCE_DIR / "published" / "imagenet.yaml"
LATENCY_DEVICE = "pixel1"


@dataclass(frozen=True)
class PublishedNetwork:
    network: str       # the name the paper gives it
    spec_name: str     # its spec under search_spaces/reference/
    top1: float        # published ImageNet top-1, percent
    pixel1_ms: float   # published Pixel-1 latency, ms
    source: str

    @property
    def spec_path(self) -> Path:
        return REFERENCE_DIR / f"{self.spec_name}.yaml"

    def spec(self):
        return load_spec(self.spec_path)


def load_published(path: str | Path | None = None) -> list[PublishedNetwork]:
    """The published table (default: the shipped one); a bad entry is one error naming file and field."""
    path = Path(path) if path is not None else PUBLISHED_FILE
    check = Checker(str(path))
    top = check.mapping(load_yaml_file(path), "", ("networks",), ("networks",))
    rows = top["networks"]
    if not isinstance(rows, list) or not rows:
        raise check.fail("networks", "expected a non-empty list of networks")
    out, seen = [], set()
    for i, row in enumerate(rows):
        field = f"networks[{i}]"
        row = check.mapping(row, field, ("network", "spec", "top1", "pixel1_ms", "source"),
                            ("network", "spec", "top1", "pixel1_ms", "source"))
        entry = PublishedNetwork(
            network=check.text(row["network"], f"{field}.network"),
            spec_name=check.text(row["spec"], f"{field}.spec"),
            top1=check.number(row["top1"], f"{field}.top1", 0, 100, what="a top-1", unit="percent"),
            pixel1_ms=check.number(row["pixel1_ms"], f"{field}.pixel1_ms", 0, above=True, what="a latency",
                                   unit="ms"),
            source=check.text(row["source"], f"{field}.source"))
        if not entry.spec_path.is_file():
            raise check.fail(f"{field}.spec", f"no reference spec named {entry.spec_name!r} "
                                              f"(expected {entry.spec_path.name} in {REFERENCE_DIR})")
        if entry.spec_name in seen:
            raise check.fail(f"{field}.spec", f"{entry.spec_name!r} is listed twice")
        seen.add(entry.spec_name)
        out.append(entry)
    return out


def predicted_latency_ms(specs: Sequence[Any], device: str = LATENCY_DEVICE) -> list[float]:
    """The device model's latency of each spec (what the search's reward sees)."""
    from nas.latency.devices import get_device  # deferred: loads torch

    dev = get_device(device)
    return [float(dev.predict(s).ms) for s in specs]
