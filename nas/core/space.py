"""Factorized hierarchical search spaces (MnasNet), read from YAML.

A space is a fixed sequence of stages. Each stage repeats one layer `layers` times; only its first
layer has the stage's stride. Per stage the controller picks, by default: layers as base + {-1, 0,
+1}, kernel, expansion ratio, SE, non-linearity, output filters as a multiple of the base rounded
to 8 (and optionally the skip). A token sequence holds one index per decision; `decode` turns any
valid token sequence into a valid ArchSpec.
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from nas.runtime.errors import UserError
from nas.runtime.paths import SPACES_DIR, resolve_builtin
from nas.core.check import MAX_BLOCKS, Checker
from nas.core.spec import (ACTIVATIONS, SE_STYLES, ArchSpec, BlockSpec, HeadSpec, StemSpec, conv_out_size,
                           make_divisible, spec_from_dict)
from nas.runtime.files import load_yaml_file

# Decision kinds in the order a stage's tokens appear.
KINDS = ("layers", "k", "exp", "se", "act", "width", "skip")
DEFAULT_CHOICES: dict[str, list] = {
    "layers": [-1, 0, 1], "k": [3, 5], "exp": [3, 6], "se": [False, True],
    "act": ["relu", "hswish"], "width": [0.75, 1.0, 1.25], "skip": [True],
}
MAX_LAYERS_PER_STAGE = 16


@dataclass(frozen=True)
class Decision:
    name: str      # e.g. "stage3.k"
    kind: str      # one of KINDS: the controller shares a softmax head per kind
    stage: int
    choices: tuple


@dataclass(frozen=True)
class Stage:
    out: int                      # base output filters
    layers: int                   # base layer count
    s: int                        # stride of the first layer
    seed: dict                    # the seed architecture's value of every kind
    choices: dict                 # kind -> tuple of options (one option = not a decision)


class SearchSpace:
    def __init__(self, name: str, family: str, resolution: int, num_classes: int, se_style: str,
                 stem: StemSpec, stages: Sequence[Stage], head: HeadSpec, reward_w: float):
        self.name, self.family = name, family
        self.resolution, self.num_classes, self.se_style = resolution, num_classes, se_style
        self.stem, self.stages, self.head, self.reward_w = stem, tuple(stages), head, reward_w
        self.decisions = tuple(
            Decision(f"stage{i + 1}.{kind}", kind, i, stage.choices[kind])
            for i, stage in enumerate(self.stages) for kind in KINDS if len(stage.choices[kind]) > 1
        )

    # ---- size and tokens ---------------------------------------------------------------------
    @property
    def num_choices(self) -> list[int]:
        return [len(d.choices) for d in self.decisions]

    def size(self) -> int:
        """Number of token sequences (networks) in the space."""
        return math.prod(self.num_choices)

    def seed_tokens(self) -> list[int]:
        return [d.choices.index(self.stages[d.stage].seed[d.kind]) for d in self.decisions]

    def sample(self, rng: np.random.Generator) -> list[int]:
        return [int(rng.integers(n)) for n in self.num_choices]

    def sample_spec(self, rng: np.random.Generator) -> ArchSpec:
        return self.decode(self.sample(rng))

    def stage_values(self, tokens: Sequence[int]) -> list[dict]:
        """The chosen value of every kind, per stage."""
        if len(tokens) != len(self.decisions):
            raise UserError(f"expected {len(self.decisions)} tokens, got {len(tokens)}", source=f"space {self.name}")
        values = [{kind: st.choices[kind][0] for kind in KINDS} for st in self.stages]
        for d, t in zip(self.decisions, tokens):
            if isinstance(t, bool) or not 0 <= int(t) < len(d.choices) or int(t) != t:
                raise UserError(f"token {t!r} out of range 0..{len(d.choices) - 1}", source=f"space {self.name}",
                                field=d.name)
            values[d.stage][d.kind] = d.choices[int(t)]
        return values

    # ---- decoding ----------------------------------------------------------------------------
    def decode(self, tokens: Sequence[int], name: str | None = None) -> ArchSpec:
        blocks: list[BlockSpec] = []
        cin = self.stem.out
        for stage, v in zip(self.stages, self.stage_values(tokens)):
            out = stage_width(stage.out, v["width"])
            for i in range(stage.layers + v["layers"]):
                layer_in = cin if i == 0 else out
                blocks.append(BlockSpec(k=v["k"], exp=expanded(layer_in, v["exp"]), out=out, se=v["se"],
                                        act=v["act"], s=stage.s if i == 0 else 1, skip=v["skip"]))
            cin = out
        return ArchSpec(name=name or f"{self.name}-" + "".join(map(str, tokens))[:40], resolution=self.resolution,
                        num_classes=self.num_classes, stem=self.stem, blocks=tuple(blocks), head=self.head,
                        se_style=self.se_style)

    def seed_spec(self) -> ArchSpec:
        return self.decode(self.seed_tokens(), name=f"{self.name}-seed")

    # ---- what the space can produce (for latency tables) -------------------------------------
    def possible_layers(self) -> Iterator[tuple[BlockSpec, int, int]]:
        """Every distinct (block, input channels, input size) any network of the space contains."""
        seen = set()
        in_widths = {self.stem.out}
        hw = conv_out_size(self.resolution, self.stem.k, self.stem.s)
        for stage in self.stages:
            c = stage.choices
            outs = sorted({stage_width(stage.out, w) for w in c["width"]})
            max_layers = stage.layers + max(c["layers"])
            hw_out = conv_out_size(hw, 3, stage.s)  # 'same' padding: independent of the kernel
            for k, e, se, act, skip, out in itertools.product(c["k"], c["exp"], c["se"], c["act"], c["skip"], outs):
                firsts = [(cin, stage.s, hw) for cin in sorted(in_widths)]
                repeats = [(out, 1, hw_out)] if max_layers > 1 else []
                for cin, s, layer_hw in firsts + repeats:
                    item = (BlockSpec(k=k, exp=expanded(cin, e), out=out, se=se, act=act, s=s, skip=skip),
                            cin, layer_hw)
                    if item not in seen:
                        seen.add(item)
                        yield item
            in_widths, hw = set(outs), hw_out

    def possible_head_inputs(self) -> list[int]:
        last = self.stages[-1]
        return sorted({stage_width(last.out, w) for w in last.choices["width"]})


def stage_width(base: int, multiple: float) -> int:
    return base if multiple == 1 else make_divisible(base * multiple)


def expanded(cin: int, ratio: float) -> int:
    """Expanded width: the input times the ratio, rounded to 8; ratio 1 keeps the input (no expand conv)."""
    return cin if ratio == 1 else make_divisible(cin * ratio)


# ---- loading --------------------------------------------------------------------------------

_SPACE_KEYS = ("name", "family", "resolution", "num_classes", "se_style", "stem", "choices", "stages", "head",
               "reward_w")
_STAGE_KEYS = ("out", "layers", "s", "k", "exp", "se", "act", "skip", "fixed", "choices")


def load_space(name_or_path: str | os.PathLike) -> SearchSpace:
    """A built-in space by name (search_spaces/<name>.yaml) or a user's YAML file."""
    path = resolve_builtin(name_or_path, SPACES_DIR, "search space")
    return space_from_dict(load_yaml_file(path), source=str(path))


def _option_list(c: Checker, value: Any, field: str, kind: str) -> tuple:
    if not isinstance(value, list) or not value:
        raise c.fail(field, f"expected a non-empty list of options, got {value!r}")
    if len(set(map(repr, value))) != len(value):
        raise c.fail(field, f"options repeat: {value}")
    for i, v in enumerate(value):
        _check_value(c, v, f"{field}[{i}]", kind)
    return tuple(value)


def _check_value(c: Checker, v: Any, field: str, kind: str) -> Any:
    if kind == "layers":
        return c.integer(v, field, -MAX_LAYERS_PER_STAGE, MAX_LAYERS_PER_STAGE)
    if kind == "k":
        return c.kernel(v, field)
    if kind in ("exp", "width"):
        c.number(v, field, 0.1, 16, what="a ratio")
        return v
    if kind in ("se", "skip"):
        return c.boolean(v, field)
    return c.choice(v, field, ACTIVATIONS)


def space_from_dict(data: Any, source: str = "<space>") -> SearchSpace:
    c = Checker(source)
    d = c.mapping(data, "", _SPACE_KEYS, ("name", "resolution", "stem", "stages", "head"))
    c.text(d["name"], "name")
    family = d.get("family", "custom")
    if not isinstance(family, str):
        raise c.fail("family", f"expected a string, got {family!r}")
    reward_w = c.number(d.get("reward_w", -0.07), "reward_w", -2, 0, what="a number")
    c.choice(d.get("se_style", "mobilenetv3"), "se_style", SE_STYLES)

    # The resolution and stem are checked here, in the file's order (the head after the stages), by
    # building a seed spec through the spec schema.
    probe = {"name": d["name"], "resolution": d["resolution"], "num_classes": d.get("num_classes", 1000),
             "se_style": d.get("se_style", "mobilenetv3"), "stem": d["stem"], "head": {"conv": 8, "act": "relu"},
             "blocks": [{"k": 3, "exp": 8, "out": 8, "se": False, "act": "relu", "s": 1}]}
    spec_from_dict(probe, source=source)

    defaults = dict(DEFAULT_CHOICES)
    top = c.mapping(d.get("choices", {}), "choices", KINDS, ())
    for kind, value in top.items():
        defaults[kind] = list(_option_list(c, value, f"choices.{kind}", kind))

    rows = d["stages"]
    if not isinstance(rows, list) or not rows:
        raise c.fail("stages", "expected a non-empty list of stage rows")
    stages = []
    for i, row in enumerate(rows):
        f = f"stages[{i}]"
        r = c.mapping(row, f, _STAGE_KEYS, ("out", "layers", "s"))
        out = c.channels(r["out"], f"{f}.out")
        layers = c.integer(r["layers"], f"{f}.layers", 1, MAX_LAYERS_PER_STAGE)
        s = c.stride(r["s"], f"{f}.s")
        seed = {"layers": 0, "width": 1.0, "skip": True}
        for kind in ("k", "exp", "se", "act", "skip"):
            if kind in r:
                seed[kind] = _check_value(c, r[kind], f"{f}.{kind}", kind)
            elif kind != "skip":
                seed[kind] = defaults[kind][0]
        fixed = c.boolean(r.get("fixed", False), f"{f}.fixed")
        over = c.mapping(r.get("choices", {}), f"{f}.choices", KINDS, ())
        choices = {}
        for kind in KINDS:
            if fixed:
                choices[kind] = (seed[kind],)
            elif kind in over:
                choices[kind] = _option_list(c, over[kind], f"{f}.choices.{kind}", kind)
            else:
                choices[kind] = tuple(defaults[kind])
            if seed[kind] not in choices[kind]:
                raise c.fail(f"{f}.{kind}", f"seed value {seed[kind]!r} is not among the options {list(choices[kind])}")
            if kind == "layers" and layers + min(choices[kind]) < 1:
                raise c.fail(f"{f}.layers", f"base {layers} with delta {min(choices[kind])} leaves no layer")
        stages.append(Stage(out=out, layers=layers, s=s, seed=seed, choices=choices))

    base = spec_from_dict({**probe, "head": d["head"]}, source=source)
    max_blocks = sum(st.layers + max(st.choices["layers"]) for st in stages)
    if max_blocks > MAX_BLOCKS:
        raise c.fail("stages", f"up to {max_blocks} blocks, at most {MAX_BLOCKS}")
    return SearchSpace(name=d["name"].strip(), family=family, resolution=base.resolution,
                       num_classes=base.num_classes, se_style=base.se_style, stem=base.stem, stages=stages,
                       head=base.head, reward_w=float(reward_w))
