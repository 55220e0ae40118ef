"""Build a torch network from an ArchSpec (its counts, from the spec alone, are in nas.core.counts)."""
from __future__ import annotations

from torch import nn

from nas.core.spec import ArchSpec, BlockSpec, HeadSpec, has_residual, se_gate

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def make_activation(name: str) -> nn.Module:
    return {
        "relu": lambda: nn.ReLU(inplace=True),
        "relu6": lambda: nn.ReLU6(inplace=True),
        "hswish": lambda: nn.Hardswish(inplace=True),
        "swish": lambda: nn.SiLU(inplace=True),
    }[name]()


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional activation; 'same' padding."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: str | None = None):
        layers = [
            nn.Conv2d(cin, cout, k, s, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
        ]
        if act is not None:
            layers.append(make_activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 conv squeeze -> ReLU -> 1x1 conv -> gate -> scale."""

    def __init__(self, channels: int, squeeze: int, gate: str):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid() if gate == "hsigmoid" else nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class Bneck(nn.Module):
    """MobileNetV3 bottleneck (inverted residual); `expand` is None when exp == in."""

    def __init__(self, block: BlockSpec, cin: int, se_squeeze: int, se_gate: str):
        super().__init__()
        self.expand = None if block.exp == cin else ConvBNAct(cin, block.exp, 1, act=block.act)
        self.depthwise = ConvBNAct(block.exp, block.exp, block.k, block.s, groups=block.exp, act=block.act)
        self.se = SqueezeExcite(block.exp, se_squeeze, se_gate) if block.se else None
        self.project = ConvBNAct(block.exp, block.out, 1)
        self.use_residual = has_residual(block, cin)

    def forward(self, x):
        y = x if self.expand is None else self.expand(x)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.use_residual else y


class Head(nn.Module):
    def __init__(self, h: HeadSpec, cin: int, num_classes: int):
        super().__init__()
        self.conv = ConvBNAct(cin, h.conv, 1, act=h.act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        if h.fc:
            self.fc = nn.Sequential(nn.Linear(h.conv, h.fc), make_activation(h.act))
            features = h.fc
        else:
            self.fc = nn.Identity()
            features = h.conv
        self.dropout = nn.Dropout(h.dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x):
        return self.classifier(self.dropout(self.fc(self.flatten(self.pool(self.conv(x))))))


class Net(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        gate = se_gate(spec.se_style)
        self.stem = ConvBNAct(3, spec.stem.out, spec.stem.k, spec.stem.s, act=spec.stem.act)
        self.blocks = nn.Sequential(*(
            Bneck(b, cin, spec.se_channels(b, cin), gate) for b, (cin, _) in zip(spec.blocks, spec.block_inputs())
        ))
        self.head = Head(spec.head, spec.blocks[-1].out, spec.num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def build_model(spec: ArchSpec) -> Net:
    """torch network for a spec, initialised as torchvision initialises MobileNetV3."""
    return initialize(Net(spec))


def initialize(net: nn.Module, convs: tuple[type, ...] = (nn.Conv2d,)) -> nn.Module:
    """torchvision's MobileNetV3 initialisation, in place; `convs` are the module types initialised as
    convolutions (anything with a conv-shaped `weight` and an optional `bias`)."""
    for m in net.modules():
        if isinstance(m, convs):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return net
