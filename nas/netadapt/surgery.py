"""Narrowing a network without changing its structure: which widths may shrink, and weight surgery.

Spec side. The feature tensors between blocks are "nodes" (node 0 is the stem output, node i + 1
block i's output). A residual add ties its input and output nodes, so the nodes fall into
bottleneck groups that must keep one width. NetAdapt's knobs are each group's width and each
expansion layer's width (blocks with exp == in have no expansion conv: their depthwise width *is*
the input group's and follows it). A width change is admissible only when it keeps the structure:
no expansion conv may appear or vanish (exp == in) and no residual add may appear (in == out).

Model side. `shrink` carries trained weights into the narrower network, keeping the filters with
the largest L2 norm and applying each choice to every tensor that touches those channels (conv out-
and in-channels, BatchNorm, squeeze-excite, residual group, head), so that a shrink that removes
nothing is the identity.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from nas.core.model import ConvBNAct, Net, build_model
from nas.core.spec import ArchSpec, has_residual

WIDTH_STEP = 8   # widths stay multiples of 8 (what mobile kernels and NetAdapt's reimplementation use)
MIN_WIDTH = 8


# ---- structure --------------------------------------------------------------------------------

def node_widths(spec: ArchSpec) -> list[int]:
    return [spec.stem.out, *(b.out for b in spec.blocks)]


def residual_groups(spec: ArchSpec) -> list[tuple[int, ...]]:
    """Consecutive nodes tied by residual adds: [(0,), (1,), (2, 3), ...]."""
    groups = [[0]]
    for i, (b, (cin, _)) in enumerate(zip(spec.blocks, spec.block_inputs())):
        if has_residual(b, cin):
            groups[-1].append(i + 1)
        else:
            groups.append([i + 1])
    return [tuple(g) for g in groups]


def structure(spec: ArchSpec) -> tuple:
    """Everything but the widths: two specs with equal structure differ only in channel counts."""
    blocks = tuple((b.k, b.s, b.se, b.act, b.skip, b.exp != cin, has_residual(b, cin))
                   for b, (cin, _) in zip(spec.blocks, spec.block_inputs()))
    h = spec.head
    return (spec.resolution, spec.num_classes, spec.se_style, (spec.stem.k, spec.stem.s, spec.stem.act),
            blocks, (h.act, h.pool, h.fc is None))


def narrower_problem(src: ArchSpec, dst: ArchSpec) -> str | None:
    """Why `dst` is not `src` with some widths reduced (None when it is)."""
    if structure(src) != structure(dst):
        return "the structure differs (blocks, kernels, strides, SE, activations, expansions or residuals)"
    pairs = [("stem.out", src.stem.out, dst.stem.out), ("head.conv", src.head.conv, dst.head.conv),
             ("head.fc", src.head.fc or 0, dst.head.fc or 0)]
    for i, (a, b) in enumerate(zip(src.blocks, dst.blocks)):
        pairs += [(f"blocks[{i}].exp", a.exp, b.exp), (f"blocks[{i}].out", a.out, b.out)]
    for name, a, b in pairs:
        if b > a:
            return f"{name} grows from {a} to {b}"
    return None


# ---- knobs: the widths NetAdapt cuts ------------------------------------------------------------

@dataclass(frozen=True)
class Knob:
    """One width NetAdapt may cut: an expansion layer ("exp", block index) or a group ("group", its nodes)."""

    kind: str
    block: int = -1
    nodes: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        if self.kind == "exp":
            return f"blocks[{self.block}].exp"
        names = ["stem" if n == 0 else f"blocks[{n - 1}]" for n in (self.nodes[0], self.nodes[-1])]
        return f"bottleneck({names[0]})" if len(self.nodes) == 1 else f"bottleneck({names[0]}..{names[1]})"

    def width(self, spec: ArchSpec) -> int:
        if self.kind == "exp":
            return spec.blocks[self.block].exp
        return node_widths(spec)[self.nodes[0]]

    def apply(self, spec: ArchSpec, width: int) -> ArchSpec:
        """`spec` with this knob at `width` (blocks without an expansion conv follow their input group)."""
        blocks = list(spec.blocks)
        if self.kind == "exp":
            blocks[self.block] = replace(blocks[self.block], exp=width)
            return spec.with_blocks(blocks)
        inputs = spec.block_inputs()
        stem = spec.stem
        for n in self.nodes:
            if n == 0:
                stem = replace(stem, out=width)
            else:
                blocks[n - 1] = replace(blocks[n - 1], out=width)
        for i, b in enumerate(spec.blocks):
            if i in self.nodes and b.exp == inputs[i][0]:  # block i reads node i: no expansion conv
                blocks[i] = replace(blocks[i], exp=width)
        return spec.with_blocks(blocks, stem=stem)


def knobs_of(spec: ArchSpec) -> list[Knob]:
    """Every expansion layer (in block order), then every bottleneck group."""
    exps = [Knob("exp", block=i) for i, (b, (cin, _)) in enumerate(zip(spec.blocks, spec.block_inputs()))
            if b.exp != cin]
    return exps + [Knob("group", nodes=g) for g in residual_groups(spec)]


def candidate_widths(current: int, floor: int) -> list[int]:
    """Multiples of 8 below `current`, down to `floor`, widest first."""
    top = (current - 1) // WIDTH_STEP * WIDTH_STEP
    return list(range(top, floor - 1, -WIDTH_STEP)) if top >= floor else []


def floor_widths(spec: ArchSpec, knobs: list[Knob]) -> tuple[dict[Knob, int], ArchSpec]:
    """The narrowest admissible width of every knob, and the spec with all of them at once.

    Knobs are settled narrowest seed width first, each at the smallest multiple of 8 that keeps the
    structure given those already settled (all 8 where nothing collides; 16 where 8 would give an
    expansion conv exp == in or open a residual). Because tied knobs end at different floors, every
    knob can reach its floor from any admissible state, so the floor spec is reachable by NetAdapt.
    """
    target = structure(spec)
    floor_spec = spec
    floors: dict[Knob, int] = {}
    for knob in sorted(knobs, key=lambda k: (k.width(spec), knobs.index(k))):
        current = knob.width(spec)
        for w in [*reversed(candidate_widths(current, MIN_WIDTH)), current]:
            trial = knob.apply(floor_spec, w)
            if structure(trial) == target:
                floors[knob], floor_spec = w, trial
                break
    return floors, floor_spec


# ---- weight surgery ---------------------------------------------------------------------------

@dataclass
class Selection:
    """Kept channel indices (ascending) of every width of a network."""

    nodes: list[torch.Tensor]            # feature tensors between blocks, node 0 = stem output
    exp: list[torch.Tensor]              # expanded channels of every block
    se: list[torch.Tensor | None]        # squeeze units of every block with SE
    head_conv: torch.Tensor
    head_fc: torch.Tensor | None


def filter_norms(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of every output filter (rows of a Linear, out-channels of a conv)."""
    return weight.detach().flatten(1).norm(dim=1)


def top_l2(norms: torch.Tensor, k: int) -> torch.Tensor:
    """Ascending indices of the k largest norms (ties: the lower index wins, so choices are reproducible)."""
    order = torch.argsort(-norms.cpu(), stable=True)
    return order[:k].sort().values


def select_channels(model: Net, dst: ArchSpec) -> Selection:
    """Which channels of `model` (built from its `.spec`) the narrower `dst` keeps."""
    src = model.spec
    problem = narrower_problem(src, dst)
    if problem:
        raise ValueError(f"cannot shrink {src.name} to {dst.name}: {problem}")
    blocks = list(model.blocks)
    widths = node_widths(dst)
    nodes: list[torch.Tensor | None] = [None] * len(widths)
    for group in residual_groups(src):
        # The group's producers: the stem conv and the project convs that write its nodes.
        score = sum(filter_norms(model.stem[0].weight if n == 0 else blocks[n - 1].project[0].weight)
                    for n in group)
        keep = top_l2(score, widths[group[0]])
        for n in group:
            nodes[n] = keep
    exp, se = [], []
    for i, (b_src, b_dst) in enumerate(zip(src.blocks, dst.blocks)):
        bneck = blocks[i]
        keep = nodes[i] if bneck.expand is None else top_l2(filter_norms(bneck.expand[0].weight), b_dst.exp)
        exp.append(keep)
        if bneck.se is None:
            se.append(None)
            continue
        squeeze = dst.se_channels(b_dst, widths[i])
        se.append(top_l2(filter_norms(bneck.se.reduce.weight[:, keep]), squeeze))
    head = model.head
    head_conv = top_l2(filter_norms(head.conv[0].weight), dst.head.conv)
    head_fc = top_l2(filter_norms(head.fc[0].weight), dst.head.fc) if dst.head.fc else None
    return Selection(nodes, exp, se, head_conv, head_fc)  # type: ignore[arg-type]


@torch.no_grad()
def _copy_conv_bn(dst: ConvBNAct, src: ConvBNAct, out_idx: torch.Tensor, in_idx: torch.Tensor | None) -> None:
    w = src[0].weight[out_idx]
    dst[0].weight.copy_(w if in_idx is None else w[:, in_idx])
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst[1], name).copy_(getattr(src[1], name)[out_idx])
    dst[1].num_batches_tracked.copy_(src[1].num_batches_tracked)


@torch.no_grad()
def _copy_layer(dst: nn.Module, src: nn.Module, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> None:
    """A conv or Linear with bias: rows `out_idx`, columns `in_idx` (None keeps all)."""
    w, b = src.weight, src.bias
    if out_idx is not None:
        w, b = w[out_idx], b[out_idx]
    if in_idx is not None:
        w = w[:, in_idx]
    dst.weight.copy_(w)
    dst.bias.copy_(b)


def shrink(model: Net, dst: ArchSpec, selection: Selection | None = None) -> Net:
    """A `dst` network carrying `model`'s weights for the kept channels (same device, mode and dtype)."""
    sel = selection or select_channels(model, dst)
    device = next(model.parameters()).device
    new = build_model(dst).to(device)
    _copy_conv_bn(new.stem, model.stem, sel.nodes[0].to(device), None)
    for i, (old_b, new_b) in enumerate(zip(model.blocks, new.blocks)):
        cin, e, out = (sel.nodes[i].to(device), sel.exp[i].to(device), sel.nodes[i + 1].to(device))
        if old_b.expand is not None:
            _copy_conv_bn(new_b.expand, old_b.expand, e, cin)
        _copy_conv_bn(new_b.depthwise, old_b.depthwise, e, None)  # depthwise: one filter per channel
        if old_b.se is not None:
            sq = sel.se[i].to(device)
            _copy_layer(new_b.se.reduce, old_b.se.reduce, sq, e)
            _copy_layer(new_b.se.expand, old_b.se.expand, e, sq)
        _copy_conv_bn(new_b.project, old_b.project, out, e)
    head_in = sel.nodes[-1].to(device)
    hc = sel.head_conv.to(device)
    _copy_conv_bn(new.head.conv, model.head.conv, hc, head_in)
    features = hc
    if sel.head_fc is not None:
        fc = sel.head_fc.to(device)
        _copy_layer(new.head.fc[0], model.head.fc[0], fc, hc)
        features = fc
    _copy_layer(new.head.classifier, model.head.classifier, None, features)
    return new.train(model.training)
