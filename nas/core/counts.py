"""What each layer of a spec costs, counted once from the spec alone (no torch).

One row per layer of the built network (`nas.core.model.Net`, rows named by its module paths),
plus the parameter-free elementwise steps a latency model needs (squeeze-excite rescale,
residual add). Every user shares these rows: the builder's count_macs / count_params, the
calibrated devices' features and the `macs` / `params` zero-cost proxies.

Conventions: MACs are the multiply-adds of conv and linear layers (elementwise steps count 0);
parameters are trainable ones (conv and linear weights and biases, BN weight and bias, not BN's
running statistics); `memory` is feature-map elements read plus written by convs and residual
adds (layers on pooled vectors count 0).
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from nas.core.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, conv_out_size, has_residual, se_channels, se_gate

# Kinds, as a latency model groups them: mobile kernels run depthwise and 1x1 convs at very
# different MACs per second, and ops on pooled vectors are bound by neither.
KINDS = (
    "conv",        # the stem's full convolution
    "pointwise",   # 1x1 conv on a feature map: expand, project, last-stage conv
    "depthwise",   # kxk depthwise conv
    "se",          # squeeze-excite 1x1 convs on the pooled vector
    "se_scale",    # squeeze-excite rescale of the feature map (elementwise)
    "add",         # residual add (elementwise)
    "fc",          # the efficient last stage's fully connected layer
    "classifier",  # the final linear layer
)


class OpCount(NamedTuple):  # a tuple: cheap to build and hash, as a search predicts thousands of specs
    name: str        # module path in the built network, e.g. "blocks.3.depthwise"; "blocks.3.add"
    kind: str        # one of KINDS
    macs: int
    params: int
    memory: int      # feature-map elements read + written (0 on pooled vectors)
    out: int         # elements written
    act: str | None  # non-linearity applied to the output (None: linear output)


def _conv(name: str, kind: str, cin: int, cout: int, k: int, hw_in: int, hw_out: int, act: str | None,
          depthwise: bool = False) -> OpCount:
    """Conv (no bias) + BN: 2 BN parameters per output channel."""
    weights = k * k * (1 if depthwise else cin) * cout
    return OpCount(name, kind, weights * hw_out * hw_out, weights + 2 * cout,
                   cin * hw_in * hw_in + cout * hw_out * hw_out, cout * hw_out * hw_out, act)


def _linear(name: str, kind: str, cin: int, cout: int, act: str | None) -> OpCount:
    """Linear layer (or 1x1 conv on a 1x1 map) with bias."""
    return OpCount(name, kind, cin * cout, cin * cout + cout, 0, cout, act)


# The rows of one timed op, named relative to it ("" is the op itself): the same layer at the
# same geometry has one cache entry wherever it sits in a network.

@lru_cache(maxsize=10_000)
def stem_counts(stem: StemSpec, resolution: int) -> tuple[OpCount, ...]:
    hw = conv_out_size(resolution, stem.k, stem.s)
    return (_conv("", "conv", 3, stem.out, stem.k, resolution, hw, stem.act),)


@lru_cache(maxsize=200_000)
def block_counts(b: BlockSpec, cin: int, hw: int, se_style: str) -> tuple[OpCount, ...]:
    """Rows of a bneck layer with `cin` input channels at `hw` x `hw`."""
    ho = conv_out_size(hw, b.k, b.s)
    rows = []
    if b.exp != cin:
        rows.append(_conv("expand", "pointwise", cin, b.exp, 1, hw, hw, b.act))
    rows.append(_conv("depthwise", "depthwise", b.exp, b.exp, b.k, hw, ho, b.act, depthwise=True))
    if b.se:
        sq = se_channels(se_style, b.exp, cin)
        gate = se_gate(se_style)
        rows.append(_linear("se.reduce", "se", b.exp, sq, "relu"))
        rows.append(_linear("se.expand", "se", sq, b.exp, gate))
        rows.append(OpCount("se.scale", "se_scale", 0, 0, 0, b.exp * ho * ho, None))
    rows.append(_conv("project", "pointwise", b.exp, b.out, 1, ho, ho, None))
    if has_residual(b, cin):
        n = b.out * ho * ho
        rows.append(OpCount("add", "add", 0, 0, 3 * n, n, None))  # reads two maps, writes one
    return tuple(rows)


@lru_cache(maxsize=10_000)
def head_counts(h: HeadSpec, cin: int, hw: int, num_classes: int) -> tuple[OpCount, ...]:
    rows = [_conv("conv", "pointwise", cin, h.conv, 1, hw, hw, h.act)]
    features = h.conv
    if h.fc:
        rows.append(_linear("fc", "fc", h.conv, h.fc, h.act))
        features = h.fc
    rows.append(_linear("classifier", "classifier", features, num_classes, None))
    return tuple(rows)


def walk_ops(spec: ArchSpec, stem=stem_counts, block=block_counts, head=head_counts) -> list:
    """`stem(stem, resolution)`, `block(block, cin, hw, se_style)` for each bneck layer and
    `head(head, cin, hw, num_classes)` along the network's geometry, in order: by default the rows
    of the ops a latency table times. A user with its own cache (latency features) passes
    functions with the same arguments, so a hit costs one lookup."""
    s, style = spec.stem, spec.se_style
    parts = [stem(s, spec.resolution)]
    ch, hw = s.out, conv_out_size(spec.resolution, s.k, s.s)
    for b in spec.blocks:
        parts.append(block(b, ch, hw, style))
        ch, hw = b.out, conv_out_size(hw, b.k, b.s)
    parts.append(head(spec.head, ch, hw, spec.num_classes))
    return parts


def op_counts(spec: ArchSpec) -> list[OpCount]:
    """Every layer's counts in execution order, named by its module path in the built network."""
    parts = walk_ops(spec)
    ops = ["stem", *(f"blocks.{i}" for i in range(len(parts) - 2)), "head"]
    return [row._replace(name=f"{op}.{row.name}" if row.name else op)
            for op, rows in zip(ops, parts) for row in rows]


def part_totals(spec: ArchSpec) -> list[tuple[str, int, int]]:
    """(part, params, MACs) of the stem, each block (`blocks[i]`) and the head: one walk of the spec,
    no model built, so a loader can refuse a network of absurd size before anything allocates it."""
    parts = walk_ops(spec)
    names = ["stem", *(f"blocks[{i}]" for i in range(len(parts) - 2)), "head"]
    return [(name, sum(r.params for r in rows), sum(r.macs for r in rows)) for name, rows in zip(names, parts)]


def count_macs(spec: ArchSpec) -> int:
    """Multiply-adds of conv and linear layers, from the spec alone."""
    return sum(row.macs for row in op_counts(spec))


def count_params(spec: ArchSpec) -> int:
    """Trainable parameters (BN weight and bias counted, running statistics not)."""
    return sum(row.params for row in op_counts(spec))
