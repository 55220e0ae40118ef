"""Decompose a spec into the ops that are timed, with readable, stable keys.

An op is the stem, one bneck layer with its input geometry, or the last stage (head with
classifier). Keys follow the once-for-all project's LUT keys, e.g.
``bneck-in:56x56x24-exp:72-out:40-k:5-s:2-se:1-act:relu``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from torch import nn

from nas.core.model import Bneck, ConvBNAct, Head
from nas.core.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, has_residual, se_channels, se_gate


_ACT = r"(relu|relu6|hswish|swish)"
OP_KEY_RE = re.compile(
    rf"stem-in:(\d+)x\1x3-out:\d+-k:\d+-s:\d+-act:{_ACT}"
    rf"|bneck-in:(\d+)x\3x\d+-exp:\d+-out:\d+-k:\d+-s:\d+-se:(0|1|mnas)-act:{_ACT}(-noskip)?"
    rf"|head-in:(\d+)x\7x\d+-conv:\d+(-fc:\d+)?-act:{_ACT}-classes:\d+")


def is_op_key(key: str) -> bool:
    """Whether `key` is an op key this project writes (a table from elsewhere may hold typos)."""
    return OP_KEY_RE.fullmatch(key) is not None


@dataclass(frozen=True)
class Op:
    key: str
    kind: str                 # stem | bneck | head
    in_ch: int
    in_hw: int
    part: StemSpec | BlockSpec | HeadSpec
    se_style: str = "mobilenetv3"
    num_classes: int = 1000

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_ch, self.in_hw, self.in_hw)


def stem_op(stem: StemSpec, resolution: int) -> Op:
    key = f"stem-in:{resolution}x{resolution}x3-out:{stem.out}-k:{stem.k}-s:{stem.s}-act:{stem.act}"
    return Op(key, "stem", 3, resolution, stem)


@lru_cache(maxsize=200_000)
def bneck_op(block: BlockSpec, in_ch: int, in_hw: int, se_style: str = "mobilenetv3") -> Op:
    se = "0"
    if block.se:
        se = "1" if se_style == "mobilenetv3" else "mnas"
    key = (f"bneck-in:{in_hw}x{in_hw}x{in_ch}-exp:{block.exp}-out:{block.out}-k:{block.k}-s:{block.s}"
           f"-se:{se}-act:{block.act}")
    if not block.skip and block.s == 1 and in_ch == block.out:
        key += "-noskip"  # the only case where `skip` changes the computation
    return Op(key, "bneck", in_ch, in_hw, block, se_style)


@lru_cache(maxsize=10_000)
def head_op(head: HeadSpec, in_ch: int, in_hw: int, num_classes: int) -> Op:
    fc = f"-fc:{head.fc}" if head.fc else ""
    key = f"head-in:{in_hw}x{in_hw}x{in_ch}-conv:{head.conv}{fc}-act:{head.act}-classes:{num_classes}"
    return Op(key, "head", in_ch, in_hw, head, num_classes=num_classes)


def ops_of(spec: ArchSpec) -> list[Op]:
    """The timed ops of a network, in execution order."""
    ops = [stem_op(spec.stem, spec.resolution)]
    for b, (cin, hw) in zip(spec.blocks, spec.block_inputs()):
        ops.append(bneck_op(b, cin, hw, spec.se_style))
    cin, hw = spec.head_input()
    ops.append(head_op(spec.head, cin, hw, spec.num_classes))
    return ops


def space_ops(space) -> list[Op]:
    """Every op any network of a search space contains: stem, each possible layer, each head, at every
    input resolution the space allows."""
    ops = [stem_op(space.stem, r) for r in space.resolutions]
    ops += [bneck_op(b, cin, hw, space.se_style) for b, cin, hw in space.possible_layers()]
    for r in space.resolutions:
        probe = replace(space.seed_spec(), resolution=r)
        _, hw = probe.head_input()
        ops += [head_op(space.head, cin, hw, space.num_classes) for cin in space.possible_head_inputs()]
    return list({op.key: op for op in ops}.values())


def build_op_module(op: Op) -> nn.Module:
    """The torch module of one op, built from the same classes as the whole network."""
    if op.kind == "stem":
        s = op.part
        return ConvBNAct(3, s.out, s.k, s.s, act=s.act)
    if op.kind == "bneck":
        b = op.part
        gate = se_gate(op.se_style)
        return Bneck(b, op.in_ch, se_channels(op.se_style, b.exp, op.in_ch), gate)
    return Head(op.part, op.in_ch, op.num_classes)


def residual_of(op: Op) -> bool:
    return op.kind == "bneck" and has_residual(op.part, op.in_ch)
