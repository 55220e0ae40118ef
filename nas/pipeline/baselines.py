"""The obvious alternatives at the run's latency: the family's MobileNetV3 scaled in width (and, in
the compare stage, brought down by NetAdapt) until its predicted latency equals the target.

A uniform width multiplier moves latency in steps (make_divisible rounds many layers at once, up
to 10% of the latency per step), so the width-scaled network is the uniform multiplier that fits,
then the rounding settled toward the target: a run of consecutive layers takes the widths of the
next step up, where that keeps the network's structure (residuals, expansions).
"""
from __future__ import annotations

from dataclasses import dataclass

from nas.core.spec import ArchSpec, scale_width

TOLERANCE = 0.02  # the width-scaled baseline's predicted latency within +-2% of the target
_LOWEST, _HIGHEST = 0.05, 4.0


@dataclass(frozen=True)
class Scaled:
    spec: ArchSpec
    latency_ms: float
    multiplier: float       # the uniform multiplier below the target
    wider: float            # the next one, whose widths some layers take
    layers_wider: int       # how many layers (stem, blocks, head) take the wider widths
    within: bool            # |latency / target - 1| <= tolerance

    def describe(self) -> str:
        if not self.layers_wider:
            return f"width x{self.multiplier:.3f}"
        return f"width x{self.multiplier:.3f}, {self.layers_wider} layer(s) rounded up to x{self.wider:.4f}'s widths"


def width_scaled(spec: ArchSpec, target_ms: float, device, tolerance: float = TOLERANCE) -> Scaled:
    """`spec` scaled in width until its predicted latency on `device` is closest to `target_ms`."""
    from nas.netadapt.proposals import predict_ms  # deferred: loads torch
    from nas.netadapt.surgery import structure  # deferred: loads torch

    def ms(s: ArchSpec) -> float:
        return float(device.predict(s).ms)

    shape = structure(spec)
    lo, hi = 1.0, 1.0
    while ms(scale_width(spec, lo)) > target_ms and lo > _LOWEST:
        lo /= 2
    while ms(scale_width(spec, hi)) <= target_ms and hi < _HIGHEST:
        hi *= 2
    while hi - lo > 1e-4:  # latency rises with the multiplier: bisect for the step the target falls in
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ms(scale_width(spec, mid)) <= target_ms else (lo, mid)
    layers = len(spec.blocks) + 2
    # Layers a..b-1 rounded up to the next step's widths, where that keeps the structure; the
    # uniform multiplier below the target stays a candidate whatever its structure (at the
    # narrowest, rounding may merge widths and no candidate would be left).
    options = {(0, 0): [lo] * layers}
    for a in range(layers):
        for b in range(a + 1, layers + 1):
            multipliers = [hi if a <= i < b else lo for i in range(layers)]
            if structure(scale_width(spec, multipliers)) == shape:
                options[(a, b)] = multipliers
    specs = [scale_width(spec, m) for m in options.values()]
    latencies = [float(x) for x in predict_ms(device, specs)]
    candidates = [(abs(t / target_ms - 1), m.count(hi), m) for t, m in zip(latencies, options.values())]
    error, wider, multipliers = min(candidates, key=lambda c: (c[0], c[1]))
    name = f"{spec.name}_x{lo:.3f}" + (f"+{wider}" if wider else "")
    best = scale_width(spec, multipliers, name)
    return Scaled(best, ms(best), lo, hi, wider, error <= tolerance)
