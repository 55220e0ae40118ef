"""Spec files: a spec loaded from YAML (or a published network by name), held to caps on its totals.

Apart from `nas.core.spec` because the caps need the counts, and the counts need the spec.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from nas.core.check import MAX_MACS, MAX_PARAMS
from nas.core.counts import part_totals
from nas.core.spec import ArchSpec, spec_from_dict
from nas.runtime.errors import UserError
from nas.runtime.files import load_yaml_file
from nas.runtime.paths import REFERENCE_DIR, resolve_builtin


def load_spec(path: str | os.PathLike) -> ArchSpec:
    """A spec file, or a published architecture by name (search_spaces/reference/<name>.yaml), whose
    totals are within the caps (`spec_limits`)."""
    path = resolve_builtin(path, REFERENCE_DIR, "spec")
    spec = spec_from_dict(load_yaml_file(path), source=str(path))
    check_totals(spec, str(path))
    return spec


# The caps load_spec holds a spec's totals to: MAX_PARAMS and MAX_MACS unless a command's flags
# raise them for a while (`spec_limits`).
_LIMITS = {"params": MAX_PARAMS, "macs": MAX_MACS}


@contextmanager
def spec_limits(max_params: int | None = None, max_macs: int | None = None) -> Iterator[None]:
    """Hold specs loaded inside the block to these caps (None: the default); a command wraps its work
    in it with its --max-params / --max-macs, and the caps go back afterwards (commands run in-process
    one after another in tests)."""
    saved = dict(_LIMITS)
    _LIMITS.update(params=max_params or MAX_PARAMS, macs=max_macs or MAX_MACS)
    try:
        yield
    finally:
        _LIMITS.update(saved)


def load_spec_capped(source, max_params: int | None = None, max_macs: int | None = None) -> ArchSpec:
    """load_spec under a command's --max-params / --max-macs (None: the default caps)."""
    with spec_limits(max_params, max_macs):
        return load_spec(source)


def check_totals(spec: ArchSpec, source: str) -> None:
    """A UserError naming the file and the network's largest part when its parameters or MACs exceed
    the caps: per-block bounds alone admit networks that would exhaust memory when built."""
    parts = part_totals(spec)
    for column, key, what, flag in ((1, "params", "parameters", "--max-params"), (2, "macs", "MACs", "--max-macs")):
        total = sum(p[column] for p in parts)
        if total > _LIMITS[key]:
            largest = max(parts, key=lambda p: p[column])
            raise UserError(f"the whole network has {total:,} {what}, more than the cap of {_LIMITS[key]:,} "
                            f"(this part: {largest[column]:,}); a network this large would exhaust memory; "
                            f"{flag} N raises the cap", source=source, field=largest[0])
