"""Architecture specs: the paper's table as plain, frozen data.

An `ArchSpec` is one stem, a sequence of bneck rows (`BlockSpec`) and a head. It has two lossless
forms: YAML (one flow mapping per bneck row) and a compact string of timm/MnasNet-style
tokens, e.g. ``ir_k5_e120_c40_s1_se_re``, that reads well in a log.

Block semantics, as in the MobileNetV3 paper and its released models: 1x1 expand conv + BN + act
(omitted when exp == in) -> kxk depthwise conv + BN + act (stride s) -> optional SE -> 1x1 project
conv + BN -> residual add when skip and s == 1 and in == out.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterator, Mapping, Sequence

import yaml

from nas.core.check import MAX_BLOCKS, MAX_CLASSES, MAX_NAME, MAX_RESOLUTION, MIN_RESOLUTION, Checker, kind
from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write_text

ACTIVATIONS = ("relu", "relu6", "hswish", "swish")
ACT_CODES = {"relu": "re", "relu6": "r6", "hswish": "hs", "swish": "sw"}
CODE_ACTS = {code: act for act, code in ACT_CODES.items()}
SE_STYLES = ("mobilenetv3", "mnasnet")
POOLS = ("avg",)

def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round to a multiple of `divisor`, never going down by more than 10% (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


@dataclass(frozen=True)
class StemSpec:
    out: int
    k: int = 3
    s: int = 2
    act: str = "hswish"


@dataclass(frozen=True)
class BlockSpec:
    """One bneck row: kernel, expanded channels, out channels, SE, non-linearity, stride."""

    k: int
    exp: int
    out: int
    se: bool
    act: str
    s: int
    skip: bool = True  # residual add where shapes allow; false for "no skip" layers

    def to_string(self) -> str:
        parts = [f"ir_k{self.k}_e{self.exp}_c{self.out}_s{self.s}"]
        if self.se:
            parts.append("se")
        parts.append(ACT_CODES[self.act])
        if not self.skip:
            parts.append("noskip")
        return "_".join(parts)


@dataclass(frozen=True)
class HeadSpec:
    """Last stage: 1x1 conv + BN + act -> pool -> [1x1 conv/FC `fc` with bias + act] -> dropout -> classifier.

    With `fc` set this is MobileNetV3's efficient last stage; with `fc` null it is the
    MobileNetV2 / MnasNet conv-pool-classifier head.
    """

    conv: int
    act: str
    pool: str = "avg"
    fc: int | None = None
    dropout: float = 0.2


@dataclass(frozen=True)
class ArchSpec:
    name: str
    resolution: int
    num_classes: int
    stem: StemSpec
    blocks: tuple[BlockSpec, ...]
    head: HeadSpec
    se_style: str = "mobilenetv3"

    # ---- geometry -------------------------------------------------------------------------
    def stem_hw(self) -> int:
        return conv_out_size(self.resolution, self.stem.k, self.stem.s)

    def block_inputs(self) -> list[tuple[int, int]]:
        """(input channels, input height = width) of every block, in order."""
        result = []
        ch, hw = self.stem.out, self.stem_hw()
        for b in self.blocks:
            result.append((ch, hw))
            ch, hw = b.out, conv_out_size(hw, b.k, b.s)
        return result

    def head_input(self) -> tuple[int, int]:
        ch, hw = self.stem.out, self.stem_hw()
        for b in self.blocks:
            ch, hw = b.out, conv_out_size(hw, b.k, b.s)
        return ch, hw

    def se_channels(self, block: BlockSpec, in_ch: int) -> int:
        return se_channels(self.se_style, block.exp, in_ch)

    # ---- identity and forms ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "se_style": self.se_style,
            "stem": _flat(self.stem),
            "blocks": [_flat(b) for b in self.blocks],
            "head": _flat(self.head),
        }
        return d

    def content_hash(self) -> str:
        """Stable identity of the architecture (the name is not part of it); kept on the frozen spec
        after the first call, since a search asks it of every network several times."""
        kept = self.__dict__.get("_content_hash")
        if kept is None:
            d = self.to_dict()
            del d["name"]
            blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
            kept = hashlib.sha256(blob.encode()).hexdigest()[:16]
            object.__setattr__(self, "_content_hash", kept)
        return kept

    def block_strings(self) -> list[str]:
        return [b.to_string() for b in self.blocks]

    def to_string(self) -> str:
        """Whole architecture in one line of tokens (lossless except for the name)."""
        net = f"net_r{self.resolution}_n{self.num_classes}"
        if self.se_style != "mobilenetv3":
            net += f"_se{self.se_style}"
        stem = f"stem_k{self.stem.k}_c{self.stem.out}_s{self.stem.s}_{ACT_CODES[self.stem.act]}"
        h = self.head
        head = f"head_c{h.conv}_{ACT_CODES[h.act]}"
        if h.fc:
            head += f"_f{h.fc}"
        head += f"_d{h.dropout!r}"
        return " ".join([net, stem, *self.block_strings(), head])

    def with_blocks(self, blocks: list[BlockSpec] | tuple[BlockSpec, ...], **changes: Any) -> "ArchSpec":
        return replace(self, blocks=tuple(blocks), **changes)


def conv_out_size(size: int, k: int, s: int) -> int:
    """Output size of a conv with 'same' padding k // 2 (odd k)."""
    return (size + 2 * (k // 2) - k) // s + 1


def se_gate(style: str) -> str:
    """The squeeze-excite gate: MnasNet's sigmoid, MobileNetV3's hard sigmoid."""
    return "sigmoid" if style == "mnasnet" else "hsigmoid"


def _flat(part: StemSpec | BlockSpec | HeadSpec) -> dict[str, Any]:
    """asdict for a flat dataclass of plain values, without its deep copies (a search hashes thousands)."""
    return {f.name: getattr(part, f.name) for f in fields(part)}


def se_channels(style: str, exp: int, in_ch: int) -> int:
    """Squeeze width: MobileNetV3 reduces the expanded width, MnasNet the block input."""
    if style == "mnasnet":
        return max(1, int(in_ch * 0.25))
    return make_divisible(exp / 4, 8)


def has_residual(block: BlockSpec, in_ch: int) -> bool:
    return block.skip and block.s == 1 and in_ch == block.out


# ---- validation -----------------------------------------------------------------------------

_STEM_KEYS = tuple(f.name for f in fields(StemSpec))
_BLOCK_KEYS = tuple(f.name for f in fields(BlockSpec))
_HEAD_KEYS = tuple(f.name for f in fields(HeadSpec))
_ARCH_KEYS = ("name", "resolution", "num_classes", "se_style", "stem", "blocks", "head")


def spec_from_dict(data: Any, source: str = "<spec>") -> ArchSpec:
    """Validate a parsed YAML mapping and build an ArchSpec; errors name the file and field."""
    c = Checker(source)
    d = c.mapping(data, "", _ARCH_KEYS, ("name", "resolution", "stem", "blocks", "head"))
    name = c.text(d["name"], "name")
    if not name.isprintable() or len(name) > MAX_NAME:  # it goes into logs, reports and file names
        raise c.fail("name", f"expected one line of printable characters (at most {MAX_NAME}), got {name[:80]!r}")
    resolution = c.integer(d["resolution"], "resolution", MIN_RESOLUTION, MAX_RESOLUTION)
    num_classes = c.integer(d.get("num_classes", 1000), "num_classes", 1, MAX_CLASSES)
    se_style = c.choice(d.get("se_style", "mobilenetv3"), "se_style", SE_STYLES)

    s = c.mapping(d["stem"], "stem", _STEM_KEYS, ("out",))
    stem = StemSpec(
        out=c.channels(s["out"], "stem.out"),
        k=c.kernel(s.get("k", 3), "stem.k"),
        s=c.stride(s.get("s", 2), "stem.s"),
        act=c.choice(s.get("act", "hswish"), "stem.act", ACTIVATIONS),
    )

    rows = d["blocks"]
    if not isinstance(rows, list) or not rows:
        raise c.fail("blocks", f"expected a non-empty list of block rows, got {kind(rows)}")
    if len(rows) > MAX_BLOCKS:
        raise c.fail("blocks", f"at most {MAX_BLOCKS} blocks, got {len(rows)}")
    blocks = []
    for i, row in enumerate(rows):
        f = f"blocks[{i}]"
        r = c.mapping(row, f, _BLOCK_KEYS, ("k", "exp", "out", "se", "act", "s"))
        blocks.append(BlockSpec(
            k=c.kernel(r["k"], f"{f}.k"),
            exp=c.channels(r["exp"], f"{f}.exp"),
            out=c.channels(r["out"], f"{f}.out"),
            se=c.boolean(r["se"], f"{f}.se"),
            act=c.choice(r["act"], f"{f}.act", ACTIVATIONS),
            s=c.stride(r["s"], f"{f}.s"),
            skip=c.boolean(r.get("skip", True), f"{f}.skip"),
        ))

    h = c.mapping(d["head"], "head", _HEAD_KEYS, ("conv", "act"))
    fc = h.get("fc")
    head = HeadSpec(
        conv=c.channels(h["conv"], "head.conv"),
        act=c.choice(h["act"], "head.act", ACTIVATIONS),
        pool=c.choice(h.get("pool", "avg"), "head.pool", POOLS),
        fc=None if fc in (None, 0) else c.channels(fc, "head.fc"),
        dropout=c.fraction(h.get("dropout", 0.2), "head.dropout"),
    )
    return ArchSpec(name=name.strip(), resolution=resolution, num_classes=num_classes, stem=stem,
                    blocks=tuple(blocks), head=head, se_style=se_style)


# ---- YAML files -----------------------------------------------------------------------------

def _flow(mapping: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(mapping), default_flow_style=True, sort_keys=False, width=1000).strip()


def spec_to_yaml(spec: ArchSpec) -> str:
    """YAML with one flow mapping per bneck row and the block string as a comment."""
    head = {k: v for k, v in asdict(spec.head).items() if not (k == "fc" and v is None)}
    lines = [
        yaml.safe_dump({"name": spec.name}, allow_unicode=True, width=1_000_000).strip(),  # any name, exactly
        f"resolution: {spec.resolution}",
        f"num_classes: {spec.num_classes}",
        f"se_style: {spec.se_style}",
        f"stem: {_flow(asdict(spec.stem))}",
        "blocks:   # bneck rows: kernel, expanded channels, out channels, SE, non-linearity, stride",
    ]
    for b in spec.blocks:
        row = asdict(b)
        if row["skip"]:
            del row["skip"]
        lines.append(f"  - {_flow(row)}  # {b.to_string()}")
    lines.append(f"head: {_flow(head)}")
    return "\n".join(lines) + "\n"


def save_spec(spec: ArchSpec, path: str | os.PathLike) -> None:
    atomic_write_text(path, spec_to_yaml(spec))


# ---- block strings --------------------------------------------------------------------------

_BLOCK_RE = re.compile(r"ir_k(\d+)_e(\d+)_c(\d+)_s(\d+)(_se)?_([a-z0-9]{2})(_noskip)?")
_STEM_RE = re.compile(r"stem_k(\d+)_c(\d+)_s(\d+)_([a-z0-9]{2})")
_HEAD_RE = re.compile(r"head_c(\d+)_([a-z0-9]{2})(?:_f(\d+))?_d([0-9.e-]+)")
_NET_RE = re.compile(r"net_r(\d+)_n(\d+)(?:_se([a-z0-9]+))?")


def _act(code: str, token: str, source: str) -> str:
    if code not in CODE_ACTS:
        raise UserError(f"unknown activation code {code!r} in {token!r} "
                        f"(one of {', '.join(CODE_ACTS)})", source=source)
    return CODE_ACTS[code]


def block_from_string(token: str, source: str = "<block string>") -> dict[str, Any]:
    m = _BLOCK_RE.fullmatch(token)
    if not m:
        raise UserError(f"bad block string {token!r} (expected like ir_k5_e120_c40_s1_se_re)", source=source)
    k, e, c, s, se, act, noskip = m.groups()
    row = {"k": int(k), "exp": int(e), "out": int(c), "se": bool(se), "act": _act(act, token, source),
           "s": int(s)}
    if noskip:
        row["skip"] = False
    return row


def spec_from_string(text: str, name: str = "from_string", source: str = "<arch string>") -> ArchSpec:
    """Inverse of `ArchSpec.to_string`; the result is validated like a YAML spec."""
    tokens = text.split()
    if len(tokens) < 4:
        raise UserError("expected 'net_... stem_... ir_... head_...'", source=source)
    net, stem, *rows, head = tokens
    mn, ms, mh = _NET_RE.fullmatch(net), _STEM_RE.fullmatch(stem), _HEAD_RE.fullmatch(head)
    if not mn:
        raise UserError(f"bad net token {net!r} (expected like net_r224_n1000)", source=source)
    if not ms:
        raise UserError(f"bad stem token {stem!r} (expected like stem_k3_c16_s2_hs)", source=source)
    if not mh:
        raise UserError(f"bad head token {head!r} (expected like head_c960_hs_f1280_d0.2)", source=source)
    try:
        dropout = float(mh.group(4))
    except ValueError:
        raise UserError(f"bad dropout in {head!r}", source=source) from None
    data = {
        "name": name,
        "resolution": int(mn.group(1)),
        "num_classes": int(mn.group(2)),
        "se_style": mn.group(3) or "mobilenetv3",
        "stem": {"k": int(ms.group(1)), "out": int(ms.group(2)), "s": int(ms.group(3)),
                 "act": _act(ms.group(4), stem, source)},
        "blocks": [block_from_string(t, source) for t in rows],
        "head": {"conv": int(mh.group(1)), "act": _act(mh.group(2), head, source),
                 "fc": int(mh.group(3)) if mh.group(3) else None, "dropout": dropout},
    }
    return spec_from_dict(data, source=source)


# ---- width multiplier -----------------------------------------------------------------------

def scale_width(spec: ArchSpec, multiplier: float | Sequence[float], name: str | None = None) -> ArchSpec:
    """Apply a width multiplier as the released MobileNetV3 checkpoints do.

    Stem and block outputs become make_divisible(c * w); a block's expanded width follows its
    already-scaled input, make_divisible(scaled_in * exp / in); the layer feeding the classifier
    (the efficient stage's FC, or a V2-style head conv) is never scaled below 1.0. `multiplier`
    may also be one value per layer, (stem, every block, head): the same rule with each layer's
    own w, which lets a scaled network land between two uniform multipliers' latencies.
    """
    n = len(spec.blocks)
    per_layer = [multiplier] * (n + 2) if isinstance(multiplier, (int, float)) else list(multiplier)
    if len(per_layer) != n + 2:
        raise UserError(f"need {n + 2} width multipliers (stem, {n} blocks, head), got {len(per_layer)}")
    for m in per_layer:
        if isinstance(m, bool) or not (isinstance(m, (int, float)) and math.isfinite(m) and m > 0):
            raise UserError(f"width multiplier must be a finite number > 0, got {m!r}")
    stem_out = make_divisible(spec.stem.out * per_layer[0])
    old_in, new_in = spec.stem.out, stem_out
    blocks = []
    for b, m in zip(spec.blocks, per_layer[1:-1]):
        new_out = make_divisible(b.out * m)
        new_exp = new_in if b.exp == old_in else make_divisible(new_in * b.exp / old_in)
        blocks.append(replace(b, exp=new_exp, out=new_out))
        old_in, new_in = b.out, new_out
    h, m = spec.head, per_layer[-1]
    if h.fc:
        head = replace(h, conv=make_divisible(h.conv * m), fc=max(h.fc, make_divisible(h.fc * m)))
    else:
        head = replace(h, conv=max(h.conv, make_divisible(h.conv * m)))
    if name is None:
        name = f"{spec.name}_x{multiplier:g}" if isinstance(multiplier, (int, float)) else f"{spec.name}_scaled"
    return replace(spec, name=name, stem=replace(spec.stem, out=stem_out), blocks=tuple(blocks), head=head)


def iter_layers(spec: ArchSpec) -> Iterator[tuple[int, BlockSpec, int, int]]:
    """(index, block, input channels, input size) for every block."""
    for i, (b, (ch, hw)) in enumerate(zip(spec.blocks, spec.block_inputs())):
        yield i, b, ch, hw
