"""Which searched network NetAdapt starts from."""
from __future__ import annotations

from nas.core.spec import ArchSpec, scale_width, spec_from_string
from nas.runtime.errors import UserError


def select_seed(records: list[dict], space, device, target: float, widen: bool = True) -> tuple[ArchSpec, str]:
    """Best reward among samples at or above the target (NetAdapt only shrinks); if the search
    found nothing that slow, the best sample widened until it reaches the target, unless NetAdapt
    could not bring the widened network back down to it (then the best sample as it is). Without
    `widen` (an accuracy model of the space, which a widened network leaves) the best sample as it is."""
    ok = [r for r in records if not r.get("failed")]
    if not ok:
        raise UserError("every sampled network failed its evaluation; nothing to adapt", source="search")
    for ceiling in (1.15, 1.3):  # close above the target: few NetAdapt iterations
        above = [r for r in ok if target <= r["latency_ms"] <= ceiling * target]
        if above:
            r = max(above, key=lambda r: r["reward"])
            return spec_from_string(r["arch"], name="best"), f"best reward within [T, {ceiling}T]: sample {r['i']}"
    r = max(ok, key=lambda r: r["reward"])
    spec = spec_from_string(r["arch"], name="best")
    if device.predict(spec).ms >= target:
        return spec, f"best reward: sample {r['i']} (above 1.3T)"
    if not widen:
        return spec, f"best reward: sample {r['i']} (below the target; kept in the space)"
    lo, hi = 1.0, 1.0
    while device.predict(scale_width(spec, hi)).ms < target and hi < 4:
        lo, hi = hi, hi * 1.25
    if device.predict(scale_width(spec, hi)).ms < target:
        return spec, f"best reward: sample {r['i']}; even 4x wider it stays under the target"
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if device.predict(scale_width(spec, mid)).ms < target else (lo, mid)
    widened = scale_width(spec, hi, name="best")
    if floor_ms(widened, device) > target:  # widths round up to multiples of 8, and the head grows too
        return spec, f"best reward: sample {r['i']}; widened to the target, NetAdapt could not cut it back"
    return widened, f"best reward: sample {r['i']}, widened x{hi:.3f} to reach the target"


def floor_ms(spec: ArchSpec, device) -> float:
    """The latency of `spec` with every width NetAdapt may cut at its floor: the least it can reach."""
    from nas.netadapt.surgery import floor_widths, knobs_of  # deferred: loads torch

    return device.predict(floor_widths(spec, knobs_of(spec))[1]).ms
