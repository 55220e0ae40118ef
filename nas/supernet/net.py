"""A weight-sharing supernet for any search space file, and `extract`, which cuts a stand-alone network out of it.

Every layer a space can produce is one "elastic" layer holding the largest option of each decision:
kernels are the centre of the largest kernel (optionally through once-for-all's learned kernel
transform), expansion, SE squeeze and stage widths are the first channels of the largest tensors,
SE, the non-linearity and the skip are switches, and a stage's depth keeps its first layers. A
path is any spec that fits (a decoded one, or a NetAdapt-shrunk one): `forward(x, spec)` runs it,
`extract(spec)` returns `build_model(spec)` carrying the inherited weights, and in eval mode the two
give the same output.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from nas.core.model import BN_EPS, BN_MOMENTUM, Net, build_model, initialize
from nas.core.space import SearchSpace, expanded, stage_width
from nas.core.spec import ArchSpec, BlockSpec, has_residual, se_channels, se_gate
from nas.runtime.errors import UserError

ACTIVATIONS = {"relu": F.relu, "relu6": F.relu6, "hswish": F.hardswish, "swish": F.silu}


def activation(x: torch.Tensor, name: str | None) -> torch.Tensor:
    return x if name is None else ACTIVATIONS[name](x)


class ElasticBN(nn.BatchNorm2d):
    """BatchNorm over the first C channels of the largest layer's; running statistics are shared too
    (they are recalibrated for each evaluated path: `nas.supernet.path_training.recalibrate_bn`)."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x):
        c = x.shape[1]
        training = self.training or self.running_mean is None
        if self.training and self.momentum is None:  # cumulative average, as BatchNorm2d does
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked)
        else:
            momentum = self.momentum
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            training, momentum or 0.0, self.eps)

    def state_for(self, c: int) -> dict[str, torch.Tensor]:
        return {"weight": self.weight[:c], "bias": self.bias[:c], "running_mean": self.running_mean[:c],
                "running_var": self.running_var[:c], "num_batches_tracked": self.num_batches_tracked}


class ElasticConv(nn.Module):
    """A conv whose weight is sliced to (out, in) channels and cropped to a kernel size. Depthwise
    convs slice one dimension. With `transform`, a smaller kernel is once-for-all's: the next larger
    kernel's centre times a learned (k*k x k*k) matrix, from the largest kernel down."""

    def __init__(self, cin: int, cout: int, kernels: tuple[int, ...] = (1,), depthwise: bool = False,
                 bias: bool = False, transform: bool = False):
        super().__init__()
        self.kernels = tuple(sorted(kernels))
        k = self.kernels[-1]
        self.depthwise = depthwise
        self.weight = nn.Parameter(torch.empty(cout, 1 if depthwise else cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.transforms = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small * small))
            for big, small in zip(self.kernels[::-1], self.kernels[-2::-1])
        } if transform else {})

    def kernel(self, k: int) -> torch.Tensor:
        w = self.weight
        for big, small in zip(self.kernels[::-1], self.kernels[-2::-1]):
            if big <= k:
                break
            start = (big - small) // 2
            w = w[:, :, start:start + small, start:start + small]
            matrix = self.transforms[f"{big}to{small}"] if self.transforms else None
            if matrix is not None:
                shape = w.shape
                w = (w.reshape(-1, small * small) @ matrix.t()).reshape(shape)
        if w.shape[-1] != k:  # a kernel between the listed ones (only without a transform)
            start = (w.shape[-1] - k) // 2
            w = w[:, :, start:start + k, start:start + k]
        return w

    def weight_for(self, cin: int, cout: int, k: int = 1) -> torch.Tensor:
        w = self.kernel(k) if k != self.weight.shape[-1] else self.weight
        return w[:cout] if self.depthwise else w[:cout, :cin]

    def forward(self, x, cout: int, k: int = 1, stride: int = 1):
        cin = x.shape[1]
        bias = None if self.bias is None else self.bias[:cout]
        return F.conv2d(x, self.weight_for(cin, cout, k), bias, stride, k // 2, groups=cin if self.depthwise else 1)


@dataclass(frozen=True)
class LayerBounds:
    """The largest tensors one layer of the space needs, and its kernel sizes."""

    stage: int
    index: int          # position in its stage
    cin: int
    exp: int
    out: int
    squeeze: int        # 0: the space never puts SE here
    kernels: tuple[int, ...]
    stride: int
    expands: bool       # some option has exp != in (an expand conv exists)


def layer_bounds(space: SearchSpace, stem_out: int) -> list[list[LayerBounds]]:
    """Per stage, per layer: the bounds over every option of the space."""
    result = []
    ins = {stem_out}
    for i, st in enumerate(space.stages):
        c = st.choices
        outs = {stage_width(st.out, w) for w in c["width"]}
        layers = []
        for j in range(st.layers + max(c["layers"])):
            cins = ins if j == 0 else outs
            exps = {(cin, expanded(cin, r)) for cin in cins for r in c["exp"]}
            squeeze = max((se_channels(space.se_style, e, cin) for cin, e in exps), default=0) if True in c["se"] else 0
            layers.append(LayerBounds(stage=i, index=j, cin=max(cins), exp=max(e for _, e in exps), out=max(outs),
                                      squeeze=squeeze, kernels=tuple(sorted(c["k"])), stride=st.s if j == 0 else 1,
                                      expands=any(e != cin for cin, e in exps)))
        result.append(layers)
        ins = outs
    return result


class ElasticSE(nn.Module):
    def __init__(self, channels: int, squeeze: int, gate: str):
        super().__init__()
        self.reduce = ElasticConv(channels, squeeze, bias=True)
        self.expand = ElasticConv(squeeze, channels, bias=True)
        self.gate = F.hardsigmoid if gate == "hsigmoid" else torch.sigmoid

    def forward(self, x, squeeze: int):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(self.reduce(s, squeeze))
        return x * self.gate(self.expand(s, x.shape[1]))


class ElasticBneck(nn.Module):
    def __init__(self, b: LayerBounds, gate: str, transform: bool):
        super().__init__()
        self.bounds = b
        self.expand = ElasticConv(b.cin, b.exp) if b.expands else None
        self.expand_bn = ElasticBN(b.exp) if b.expands else None
        self.depthwise = ElasticConv(b.exp, b.exp, b.kernels, depthwise=True, transform=transform)
        self.depthwise_bn = ElasticBN(b.exp)
        self.se = ElasticSE(b.exp, b.squeeze, gate) if b.squeeze else None
        self.project = ElasticConv(b.exp, b.out)
        self.project_bn = ElasticBN(b.out)

    def forward(self, x, block: BlockSpec, squeeze: int):
        cin = x.shape[1]
        y = x
        if block.exp != cin:
            y = activation(self.expand_bn(self.expand(x, block.exp)), block.act)
        y = activation(self.depthwise_bn(self.depthwise(y, block.exp, block.k, block.s)), block.act)
        if block.se:
            y = self.se(y, squeeze)
        y = self.project_bn(self.project(y, block.out))
        return x + y if has_residual(block, cin) else y


class Supernet(nn.Module):
    """Shared weights for every network of `space` as a proxy task trains it: the task's classes,
    input resolution and stem stride (`nas.accuracy.short_training.adapt_spec`)."""

    def __init__(self, space: SearchSpace, num_classes: int | None = None, resolution: int | None = None,
                 stem_stride: int | None = None, kernel_transform: bool = False):
        super().__init__()
        if len(space.resolutions) > 1:  # every path trains and scores at the task's one resolution
            raise UserError(f"searches the input resolution ({list(space.resolutions)}), which a supernet trained at "
                            "the proxy task's one resolution cannot tell apart: use a space with one resolution, "
                            "or an accuracy signal that knows resolutions (e.g. --proxy ofa-imagenet)",
                            source=f"space {space.name}", field="choices.resolution")
        self.space = space
        self.num_classes = num_classes or space.num_classes
        self.resolution = resolution or space.resolution
        self.stem_spec = space.stem if stem_stride is None else type(space.stem)(
            out=space.stem.out, k=space.stem.k, s=stem_stride, act=space.stem.act)
        self.kernel_transform = kernel_transform
        self.gate = se_gate(space.se_style)
        self.bounds = layer_bounds(space, self.stem_spec.out)
        st = self.stem_spec
        self.stem = ElasticConv(3, st.out, (st.k,))
        self.stem_bn = ElasticBN(st.out)
        self.stages = nn.ModuleList(
            nn.ModuleList(ElasticBneck(b, self.gate, kernel_transform) for b in stage) for stage in self.bounds)
        h = space.head
        self.head_conv = ElasticConv(self.bounds[-1][0].out, h.conv)
        self.head_bn = ElasticBN(h.conv)
        self.fc = nn.Linear(h.conv, h.fc) if h.fc else None
        self.dropout = nn.Dropout(h.dropout)
        self.classifier = nn.Linear(h.fc or h.conv, self.num_classes)
        initialize(self, convs=(ElasticConv,))

    # ---- paths -------------------------------------------------------------------------------
    def layout(self, spec: ArchSpec) -> list[tuple[int, int]]:
        """(stage, layer) of each of the spec's blocks, or a UserError naming what does not fit."""
        self.check(spec)
        blocks, inputs = spec.blocks, [c for c, _ in spec.block_inputs()]
        found = _assign(self, blocks, tuple(inputs))
        if found is None:
            raise UserError("its blocks do not fit the supernet's stages (layer counts, strides, kernels "
                            "or widths beyond the space's)", source=f"spec {spec.name}", field="blocks")
        return list(found)

    def check(self, spec: ArchSpec) -> None:
        s, h = self.stem_spec, self.space.head
        wants = {"num_classes": (spec.num_classes, self.num_classes), "resolution": (spec.resolution, self.resolution),
                 "se_style": (spec.se_style, self.space.se_style), "stem.k": (spec.stem.k, s.k),
                 "stem.s": (spec.stem.s, s.s), "stem.act": (spec.stem.act, s.act), "head.act": (spec.head.act, h.act),
                 "head.fc": (bool(spec.head.fc), bool(h.fc))}
        for field, (got, want) in wants.items():
            if got != want:
                raise UserError(f"{got!r} here, the supernet has {want!r}", source=f"spec {spec.name}", field=field)
        if spec.stem.out > s.out or spec.head.conv > h.conv or (h.fc and spec.head.fc > h.fc):
            raise UserError("stem or head wider than the supernet's", source=f"spec {spec.name}", field="head")

    def forward(self, x, spec: ArchSpec):
        places = self.layout(spec)
        x = activation(self.stem_bn(self.stem(x, spec.stem.out, spec.stem.k, spec.stem.s)), spec.stem.act)
        for block, (i, j), (cin, _) in zip(spec.blocks, places, spec.block_inputs()):
            x = self.stages[i][j](x, block, spec.se_channels(block, cin))
        h = spec.head
        x = activation(self.head_bn(self.head_conv(x, h.conv)), h.act)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if self.fc is not None:
            x = activation(F.linear(x, self.fc.weight[:h.fc, :h.conv], self.fc.bias[:h.fc]), h.act)
        features = h.fc or h.conv
        return F.linear(self.dropout(x), self.classifier.weight[:, :features], self.classifier.bias)

    def extract(self, spec: ArchSpec) -> Net:
        """`build_model(spec)` carrying this supernet's weights for the spec's path."""
        places = self.layout(spec)
        net = build_model(spec)
        state: dict[str, torch.Tensor] = {}

        def conv_bn(prefix: str, conv: ElasticConv, bn: ElasticBN, cin: int, cout: int, k: int = 1):
            state[f"{prefix}.0.weight"] = conv.weight_for(cin, cout, k)
            state.update({f"{prefix}.1.{n}": t for n, t in bn.state_for(cout).items()})

        conv_bn("stem", self.stem, self.stem_bn, 3, spec.stem.out, spec.stem.k)
        for n, (block, (i, j), (cin, _)) in enumerate(zip(spec.blocks, places, spec.block_inputs())):
            layer, p = self.stages[i][j], f"blocks.{n}"
            if block.exp != cin:
                conv_bn(f"{p}.expand", layer.expand, layer.expand_bn, cin, block.exp)
            conv_bn(f"{p}.depthwise", layer.depthwise, layer.depthwise_bn, block.exp, block.exp, block.k)
            if block.se:
                sq = spec.se_channels(block, cin)
                state[f"{p}.se.reduce.weight"] = layer.se.reduce.weight_for(block.exp, sq)
                state[f"{p}.se.reduce.bias"] = layer.se.reduce.bias[:sq]
                state[f"{p}.se.expand.weight"] = layer.se.expand.weight_for(sq, block.exp)
                state[f"{p}.se.expand.bias"] = layer.se.expand.bias[:block.exp]
            conv_bn(f"{p}.project", layer.project, layer.project_bn, block.exp, block.out)
        h = spec.head
        conv_bn("head.conv", self.head_conv, self.head_bn, spec.blocks[-1].out, h.conv)
        if h.fc:
            state["head.fc.0.weight"] = self.fc.weight[:h.fc, :h.conv]
            state["head.fc.0.bias"] = self.fc.bias[:h.fc]
        state["head.classifier.weight"] = self.classifier.weight[:, :h.fc or h.conv]
        state["head.classifier.bias"] = self.classifier.bias
        net.load_state_dict({k: v.detach().clone() for k, v in state.items()})
        return net

    # ---- the space's extremes (the sandwich rule) ------------------------------------------
    def largest(self) -> ArchSpec:
        return self.adapt(self.space.decode([len(d.choices) - 1 for d in self.space.decisions], name="largest"))

    def smallest(self) -> ArchSpec:
        return self.adapt(self.space.decode([0] * len(self.space.decisions), name="smallest"))

    def adapt(self, spec: ArchSpec) -> ArchSpec:
        """A spec of the space as this supernet runs it (the proxy task's classes, resolution, stem)."""
        return replace(spec, num_classes=self.num_classes, resolution=self.resolution, stem=self.stem_spec)

    def sort_channels(self) -> None:
        """Once-for-all's channel reorganisation: each layer's expanded channels in decreasing order of
        importance (L1 norm of the project conv's input weights), so that a smaller expansion keeps the
        most important ones. Layers whose depthwise also serves exp == in options (ratio 1) are left."""
        with torch.no_grad():
            for layer in (l for stage in self.stages for l in stage):
                if layer.expand is None or not _all_expanding(self.space.stages[layer.bounds.stage]):
                    continue
                order = layer.project.weight.abs().sum(dim=(0, 2, 3)).argsort(descending=True)
                _permute(layer.expand.weight, order, 0)
                for bn in (layer.expand_bn, layer.depthwise_bn):
                    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                        _permute(t, order, 0)
                _permute(layer.depthwise.weight, order, 0)
                _permute(layer.project.weight, order, 1)
                if layer.se is not None:
                    _permute(layer.se.reduce.weight, order, 1)
                    _permute(layer.se.expand.weight, order, 0)
                    _permute(layer.se.expand.bias, order, 0)

    def config(self) -> dict:
        """What rebuilds this supernet's shape (saved beside its weights)."""
        return {"space": self.space.name, "num_classes": self.num_classes, "resolution": self.resolution,
                "stem_stride": self.stem_spec.s, "kernel_transform": self.kernel_transform}


def _all_expanding(stage) -> bool:
    return 1 not in stage.choices["exp"]


def _permute(t: torch.Tensor, order: torch.Tensor, dim: int) -> None:
    n = order.numel()
    idx = [slice(None)] * t.dim()
    idx[dim] = slice(0, n)
    t[tuple(idx)] = t[tuple(idx)].index_select(dim, order)


def _fits(b: LayerBounds, block: BlockSpec, cin: int, transform: bool) -> bool:
    kernel_ok = block.k in b.kernels if transform else (block.k % 2 == 1 and block.k <= b.kernels[-1])
    return (block.s == b.stride and kernel_ok and cin <= b.cin and block.exp <= b.exp and block.out <= b.out
            and (block.exp == cin or b.expands))


def _assign(net: Supernet, blocks: tuple[BlockSpec, ...], inputs: tuple[int, ...]):
    """Blocks to (stage, layer): each stage takes a run of blocks whose length is one of its layer
    counts and whose layers all fit; the first assignment that uses every block (depth-first)."""
    space, bounds, transform = net.space, net.bounds, net.kernel_transform

    @lru_cache(maxsize=None)
    def solve(stage: int, pos: int):
        if stage == len(space.stages):
            return () if pos == len(blocks) else None
        st = space.stages[stage]
        for n in sorted({st.layers + d for d in st.choices["layers"]}, reverse=True):
            if pos + n > len(blocks):
                continue
            if not all(_fits(bounds[stage][j], blocks[pos + j], inputs[pos + j], transform) for j in range(n)):
                continue
            rest = solve(stage + 1, pos + n)
            if rest is not None:
                return tuple((stage, j) for j in range(n)) + rest
        return None

    return solve(0, 0)
