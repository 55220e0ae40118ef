"""Accel-NASBench's MnasNet space: its architecture records as specs, and back.

A record's `architecture` names, for each of the 7 blocks (stages) of the EfficientNet-B0 skeleton,
`block{i}_e` (expansion), `_k` (kernel), `_l` (layers) and `_se`. The space file
`accel_mnasnet.yaml` holds exactly these choices, so a record is one token sequence of it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping

from nas.core.space import SearchSpace, load_space
from nas.core.spec import ArchSpec
from nas.runtime.errors import UserError

SPACE = "accel_mnasnet"
BLOCKS = 7
FIELDS = ("e", "k", "l", "se")
_KIND = {"e": "exp", "k": "k", "l": "layers", "se": "se"}


@lru_cache(maxsize=1)
def accel_space() -> SearchSpace:
    return load_space(SPACE)


def spec_of(arch: Mapping, name: str = "accel", space: SearchSpace | None = None) -> ArchSpec:
    """The network of a record's `architecture` mapping (a UserError names a missing or bad field)."""
    space = space or accel_space()
    tokens = []
    for d in space.decisions:
        field = next(f for f, kind in _KIND.items() if kind == d.kind)
        key = f"block{d.stage}_{field}"
        if key not in arch:
            raise UserError("missing", source="Accel-NASBench architecture", field=key)
        value = arch[key] - space.stages[d.stage].layers if d.kind == "layers" else arch[key]
        if value not in d.choices:
            raise UserError(f"{arch[key]!r} is not among the space's options", source="Accel-NASBench architecture",
                            field=key)
        tokens.append(d.choices.index(value))
    return space.decode(tokens, name=name)


def arch_of(spec: ArchSpec, space: SearchSpace | None = None) -> dict:
    """A network's `architecture` mapping (a UserError names the field where it leaves the space)."""
    space = space or accel_space()
    values = space.stage_values(space.encode(spec))
    arch = {}
    for i, v in enumerate(values):
        arch.update({f"block{i}_e": v["exp"], f"block{i}_k": v["k"],
                     f"block{i}_l": space.stages[i].layers + v["layers"], f"block{i}_se": v["se"]})
    return arch

