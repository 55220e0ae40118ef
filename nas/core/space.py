"""Factorized hierarchical search spaces (MnasNet), read from YAML.

A space is a fixed sequence of stages. Each stage repeats one layer `layers` times; only its first
layer has the stage's stride. Per stage the controller picks, by default: layers as base + {-1, 0,
+1}, kernel, expansion ratio, SE, non-linearity, output filters as a multiple of the base rounded
to 8 (and optionally the skip). A token sequence holds one index per decision; `decode` turns any
valid token sequence into a valid ArchSpec, and `encode` turns a network of the space back into
its tokens (or names the first field where it leaves the space).

Two extensions carry once-for-all's space: a stage may decide some kinds per layer (`per_layer:
[k, exp]`: one decision per layer slot up to the stage's deepest option; slots beyond the chosen
depth are ignored, as OFA's encoding zeroes them), and the input resolution may be a decision
(`choices: {resolution: [...]}`).
"""
from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

import numpy as np

from nas.runtime.errors import UserError
from nas.runtime.paths import SPACES_DIR, resolve_builtin
from nas.core.check import MAX_BLOCKS, MAX_RESOLUTION, MIN_RESOLUTION, Checker
from nas.core.spec import (ACTIVATIONS, SE_STYLES, ArchSpec, BlockSpec, HeadSpec, StemSpec, conv_out_size,
                           make_divisible, spec_from_dict)
from nas.runtime.files import load_yaml_file
from nas.runtime.registry import SPACES

# Decision kinds in the order a stage's tokens appear.
KINDS = ("layers", "k", "exp", "se", "act", "width", "skip")
PER_LAYER_KINDS = ("k", "exp", "se", "act")  # what one layer may choose apart from its stage
RESOLUTION = "resolution"  # the decision kind of the input resolution (one per space, first)
DEFAULT_CHOICES: dict[str, list] = {
    "layers": [-1, 0, 1], "k": [3, 5], "exp": [3, 6], "se": [False, True],
    "act": ["relu", "hswish"], "width": [0.75, 1.0, 1.25], "skip": [True],
}
MAX_LAYERS_PER_STAGE = 16


@dataclass(frozen=True)
class Decision:
    name: str      # e.g. "stage3.k", "stage3.layer2.k" or "resolution"
    kind: str      # one of KINDS or RESOLUTION: the controller shares a softmax head per kind
    stage: int     # -1 for the resolution
    choices: tuple
    layer: int | None = None  # the layer slot of a per-layer decision


@dataclass(frozen=True)
class Stage:
    out: int                      # base output filters
    layers: int                   # base layer count
    s: int                        # stride of the first layer
    seed: dict                    # the seed architecture's value of every kind
    choices: dict                 # kind -> tuple of options (one option = not a decision)
    per_layer: tuple = ()         # kinds decided per layer slot, not once for the stage

    @property
    def max_layers(self) -> int:
        return self.layers + max(self.choices["layers"])


class SearchSpace:
    def __init__(self, name: str, family: str, resolution: int, num_classes: int, se_style: str,
                 stem: StemSpec, stages: Sequence[Stage], head: HeadSpec, reward_w: float,
                 resolutions: Sequence[int] | None = None):
        self.name, self.family = name, family
        self.resolution, self.num_classes, self.se_style = resolution, num_classes, se_style
        self.resolutions = tuple(resolutions or (resolution,))  # the seed's `resolution` is among them
        self.stem, self.stages, self.head, self.reward_w = stem, tuple(stages), head, reward_w
        decisions = [Decision(RESOLUTION, RESOLUTION, -1, self.resolutions)] if len(self.resolutions) > 1 else []
        for i, stage in enumerate(self.stages):
            for kind in KINDS:
                options = stage.choices[kind]
                if len(options) < 2:
                    continue
                if kind in stage.per_layer:
                    decisions += [Decision(f"stage{i + 1}.layer{j + 1}.{kind}", kind, i, options, j)
                                  for j in range(stage.max_layers)]
                else:
                    decisions.append(Decision(f"stage{i + 1}.{kind}", kind, i, options))
        self.decisions = tuple(decisions)

    # ---- size and tokens ---------------------------------------------------------------------
    @property
    def num_choices(self) -> list[int]:
        return [len(d.choices) for d in self.decisions]

    def size(self) -> int:
        """Number of token sequences (networks) in the space."""
        return math.prod(self.num_choices)

    def seed_tokens(self) -> list[int]:
        return [d.choices.index(self.resolution if d.kind == RESOLUTION else self.stages[d.stage].seed[d.kind])
                for d in self.decisions]

    def sample(self, rng: np.random.Generator) -> list[int]:
        return [int(rng.integers(n)) for n in self.num_choices]

    def sample_spec(self, rng: np.random.Generator) -> ArchSpec:
        return self.decode(self.sample(rng))

    def stage_values(self, tokens: Sequence[int]) -> list[dict]:
        """The chosen value of every kind, per stage; a per-layer kind holds a list, one value per slot."""
        return self._values(tokens)[1]

    def _values(self, tokens: Sequence[int]) -> tuple[int, list[dict]]:
        if len(tokens) != len(self.decisions):
            raise UserError(f"expected {len(self.decisions)} tokens, got {len(tokens)}", source=f"space {self.name}")
        values = [{kind: ([st.choices[kind][0]] * st.max_layers if kind in st.per_layer else st.choices[kind][0])
                   for kind in KINDS} for st in self.stages]
        resolution = self.resolution if len(self.resolutions) < 2 else self.resolutions[0]
        for d, t in zip(self.decisions, tokens):
            if isinstance(t, bool) or not 0 <= int(t) < len(d.choices) or int(t) != t:
                raise UserError(f"token {t!r} out of range 0..{len(d.choices) - 1}", source=f"space {self.name}",
                                field=d.name)
            if d.kind == RESOLUTION:
                resolution = d.choices[int(t)]
            elif d.layer is None:
                values[d.stage][d.kind] = d.choices[int(t)]
            else:
                values[d.stage][d.kind][d.layer] = d.choices[int(t)]
        return resolution, values

    # ---- decoding ----------------------------------------------------------------------------
    def decode(self, tokens: Sequence[int], name: str | None = None) -> ArchSpec:
        blocks: list[BlockSpec] = []
        cin = self.stem.out
        resolution, values = self._values(tokens)
        for stage, v in zip(self.stages, values):
            out = stage_width(stage.out, v["width"])
            for i in range(stage.layers + v["layers"]):
                layer_in = cin if i == 0 else out
                at = {kind: v[kind][i] if kind in stage.per_layer else v[kind] for kind in PER_LAYER_KINDS}
                blocks.append(BlockSpec(k=at["k"], exp=expanded(layer_in, at["exp"]), out=out, se=at["se"],
                                        act=at["act"], s=stage.s if i == 0 else 1, skip=v["skip"]))
            cin = out
        return ArchSpec(name=name or f"{self.name}-" + "".join(map(str, tokens))[:40], resolution=resolution,
                        num_classes=self.num_classes, stem=self.stem, blocks=tuple(blocks), head=self.head,
                        se_style=self.se_style)

    def encode(self, spec: ArchSpec) -> list[int]:
        """The tokens of a network of this space (ignored per-layer slots get their first option).

        Raises a UserError naming the field (`resolution`, `stem`, `head`, `blocks[i].k`, ...) where the
        network leaves the space, so a model of the space refuses anything else clearly.
        """
        src = f"network {spec.name!r} (space {self.name})"

        def fail(field: str, message: str) -> UserError:
            return UserError(message, source=src, field=field)

        if spec.resolution not in self.resolutions:
            raise fail("resolution", f"{spec.resolution} is not one of the space's {list(self.resolutions)}")
        for field, mine, theirs in (("stem", self.stem, spec.stem), ("head", self.head, spec.head),
                                    ("num_classes", self.num_classes, spec.num_classes),
                                    ("se_style", self.se_style, spec.se_style)):
            if mine != theirs:
                raise fail(field, f"{theirs} differs from the space's {mine}")
        tokens = {}
        if len(self.resolutions) > 1:
            tokens[RESOLUTION] = self.resolutions.index(spec.resolution)
        blocks, at, cin = spec.blocks, 0, self.stem.out
        for i, stage in enumerate(self.stages):
            widths = {stage_width(stage.out, w): w for w in stage.choices["width"]}
            if at >= len(blocks):
                raise fail("blocks", f"{len(blocks)} blocks end before stage {i + 1}")
            first = blocks[at]
            if first.out not in widths or first.s != stage.s:
                raise fail(f"blocks[{at}]", f"stage {i + 1} starts with {stage.s} stride and one of "
                           f"{sorted(widths)} channels, got {first.to_string()}")
            n = 1  # greedy: a stage takes every following stride-1 layer of its width (decode checks it)
            while (n < stage.max_layers and at + n < len(blocks) and blocks[at + n].s == 1
                   and blocks[at + n].out == first.out):
                n += 1
            layer_values: dict[str, list] = {kind: [] for kind in PER_LAYER_KINDS}
            for j in range(n):
                b, b_in = blocks[at + j], (cin if j == 0 else first.out)
                for kind in PER_LAYER_KINDS:
                    value = _block_value(b, b_in, kind, stage.choices[kind])
                    if value is None:
                        raise fail(f"blocks[{at + j}].{kind}", f"{_shown(b, b_in, kind)} is not among stage {i + 1}'s "
                                   f"options {list(stage.choices[kind])}")
                    layer_values[kind].append(value)
            whole = {"layers": n - stage.layers, "width": widths[first.out], "skip": blocks[at].skip}
            for kind, value in whole.items():
                if value not in stage.choices[kind]:
                    raise fail(f"blocks[{at}].{kind}", f"{value!r} is not among stage {i + 1}'s options "
                               f"{list(stage.choices[kind])}")
            for kind in PER_LAYER_KINDS:
                vals = layer_values[kind]
                if kind in stage.per_layer:
                    whole[kind] = vals + [stage.choices[kind][0]] * (stage.max_layers - n)
                elif len(set(map(repr, vals))) > 1:
                    raise fail(f"blocks[{at}].{kind}", f"stage {i + 1} decides {kind} once for all its layers, "
                               f"got {vals}")
                else:
                    whole[kind] = vals[0]
            tokens[i] = whole
            at, cin = at + n, first.out
        if at != len(blocks):
            raise fail(f"blocks[{at}]", f"{len(blocks) - at} block(s) beyond the space's last stage")
        out = []
        for d in self.decisions:
            value = tokens[RESOLUTION] if d.kind == RESOLUTION else None
            if d.kind != RESOLUTION:
                v = tokens[d.stage][d.kind]
                value = d.choices.index(v[d.layer] if d.layer is not None else v)
            out.append(value)
        if replace(self.decode(out), name=spec.name) != spec:  # e.g. a greedy stage took the next one's layer
            raise fail("blocks", "is not a network of this space (its layers do not decode back to it)")
        return out

    def seed_spec(self) -> ArchSpec:
        return self.decode(self.seed_tokens(), name=f"{self.name}-seed")

    # ---- what the space can produce (for latency tables) -------------------------------------
    def possible_layers(self) -> Iterator[tuple[BlockSpec, int, int]]:
        """Every distinct (block, input channels, input size) any network of the space contains."""
        seen: set = set()
        for resolution in self.resolutions:
            yield from self._possible_layers(resolution, seen)

    def _possible_layers(self, resolution: int, seen: set) -> Iterator[tuple[BlockSpec, int, int]]:
        in_widths = {self.stem.out}
        hw = conv_out_size(resolution, self.stem.k, self.stem.s)
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


def _block_value(b: BlockSpec, cin: int, kind: str, options: tuple) -> Any:
    """The option of `kind` that block `b` (with `cin` input channels) took, or None if none did."""
    if kind == "exp":
        return next((r for r in options if expanded(cin, r) == b.exp), None)
    value = getattr(b, kind)
    return value if value in options else None


def _shown(b: BlockSpec, cin: int, kind: str) -> str:
    return f"expansion {b.exp}/{cin}" if kind == "exp" else f"{kind} {getattr(b, kind)!r}"


def stage_width(base: int, multiple: float) -> int:
    return base if multiple == 1 else make_divisible(base * multiple)


def expanded(cin: int, ratio: float) -> int:
    """Expanded width: the input times the ratio, rounded to 8; ratio 1 keeps the input (no expand conv)."""
    return cin if ratio == 1 else make_divisible(cin * ratio)


# ---- loading --------------------------------------------------------------------------------

_SPACE_KEYS = ("name", "family", "resolution", "num_classes", "se_style", "stem", "choices", "stages", "head",
               "reward_w")
_STAGE_KEYS = ("out", "layers", "s", "k", "exp", "se", "act", "skip", "fixed", "choices", "per_layer")


def load_space(name_or_path: str | os.PathLike | SearchSpace) -> SearchSpace:
    """A space registered in `SPACES` (the shipped search_spaces/<name>.yaml, a user's own) by
    name, or a user's YAML file."""
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    if isinstance(name_or_path, str) and name_or_path in SPACES:
        registered = SPACES[name_or_path]
        if isinstance(registered, SearchSpace):
            return registered
        name_or_path = registered
    text = str(name_or_path)
    if not (Path(text).suffix or Path(text).exists() or os.sep in text):
        raise UserError(f"unknown search space {text!r} (built-in: {', '.join(SPACES)}; or a path to a YAML file)")
    path = resolve_builtin(name_or_path, SPACES_DIR, "search space")
    return space_from_dict(load_yaml_file(path), source=str(path))


for _path in sorted(SPACES_DIR.glob("*.yaml")):  # the shipped spaces, by file name
    SPACES.register(_path.stem, _path, help=f"shipped: {_path.name}")


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
    top = dict(c.mapping(d.get("choices", {}), "choices", (*KINDS, RESOLUTION), ()))
    resolutions = top.pop(RESOLUTION, None)
    if resolutions is not None:
        if not isinstance(resolutions, list) or not resolutions or len(set(map(repr, resolutions))) != len(resolutions):
            raise c.fail("choices.resolution", f"expected a non-empty list of distinct resolutions, got {resolutions!r}")
        for i, r in enumerate(resolutions):
            c.integer(r, f"choices.resolution[{i}]", MIN_RESOLUTION, MAX_RESOLUTION)
        if d["resolution"] not in resolutions:
            raise c.fail("resolution", f"the seed's resolution {d['resolution']!r} is not among choices.resolution "
                         f"{resolutions}")
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
        per_layer = r.get("per_layer", [])
        if not isinstance(per_layer, list):
            raise c.fail(f"{f}.per_layer", f"expected a list of kinds among {', '.join(PER_LAYER_KINDS)}, "
                         f"got {per_layer!r}")
        for j, kind in enumerate(per_layer):
            c.choice(kind, f"{f}.per_layer[{j}]", PER_LAYER_KINDS)
        stages.append(Stage(out=out, layers=layers, s=s, seed=seed, choices=choices,
                            per_layer=tuple(dict.fromkeys(per_layer))))

    base = spec_from_dict({**probe, "head": d["head"]}, source=source)
    max_blocks = sum(st.layers + max(st.choices["layers"]) for st in stages)
    if max_blocks > MAX_BLOCKS:
        raise c.fail("stages", f"up to {max_blocks} blocks, at most {MAX_BLOCKS}")
    return SearchSpace(name=d["name"].strip(), family=family, resolution=base.resolution,
                       num_classes=base.num_classes, se_style=base.se_style, stem=base.stem, stages=stages,
                       head=base.head, reward_w=float(reward_w), resolutions=resolutions)
