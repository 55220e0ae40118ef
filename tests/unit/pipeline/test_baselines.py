"""The width-scaled baseline: the family's MobileNetV3 at the run's latency, within 2%."""
import pytest

from nas.core.spec import scale_width
from nas.core.spec_file import load_spec
from nas.latency.devices import get_device
from nas.netadapt.surgery import structure
from nas.pipeline.baselines import TOLERANCE, width_scaled
from nas.pipeline.compare import family_reference
from nas.runtime.errors import UserError
from nas.runtime.paths import REFERENCE_DIR

PIXEL1 = get_device("pixel1")
LARGE = load_spec(REFERENCE_DIR / "mobilenetv3_large.yaml")
SMALL = load_spec(REFERENCE_DIR / "mobilenetv3_small.yaml")


@pytest.mark.parametrize("spec,target", [(LARGE, 50.0), (LARGE, 51.0), (LARGE, 40.0), (LARGE, 60.0),
                                          (SMALL, 15.8), (SMALL, 11.85), (SMALL, 12.8), (SMALL, 20.0)])
def test_lands_within_two_percent_of_the_target(spec, target):
    # 11.85 ms lies inside a 1.3 ms step of the uniform multiplier (11.55 -> 12.88 ms): only the
    # rounded-up run of layers lands it.
    r = width_scaled(spec, target, PIXEL1)
    assert r.within and abs(r.latency_ms / target - 1) <= TOLERANCE
    assert PIXEL1.predict(r.spec).ms == pytest.approx(r.latency_ms)
    assert structure(r.spec) == structure(spec)  # residuals, expansions, kernels: only widths change
    assert (r.multiplier > 1) == (target > PIXEL1.predict(spec).ms)
    assert r.spec.name.startswith(f"{spec.name}_x")


def test_a_target_inside_one_uniform_step_needs_the_rounded_up_layers():
    uniform = [PIXEL1.predict(scale_width(SMALL, m)).ms for m in (0.74, 0.75)]
    assert uniform[0] < 11.85 * 0.98 and uniform[1] > 11.85 * 1.02  # no uniform multiplier lands it
    r = width_scaled(SMALL, 11.85, PIXEL1)
    assert r.layers_wider > 0 and "rounded up" in r.describe()


def test_an_unreachable_target_is_reported_not_hidden():
    # Large's latency jumps from 23 to 27 ms within one rounding step on this device model.
    r = width_scaled(LARGE, 25.0, PIXEL1)
    assert not r.within and abs(r.latency_ms / 25.0 - 1) > TOLERANCE
    # Below the narrowest network (rounding merges widths there): the narrowest, said to miss.
    tiny = width_scaled(SMALL, 0.5, PIXEL1)
    assert not tiny.within and tiny.latency_ms > 0.5 and tiny.multiplier < 0.1


def test_per_layer_multipliers_follow_the_uniform_rule():
    n = len(LARGE.blocks) + 2
    assert scale_width(LARGE, [0.75] * n).blocks == scale_width(LARGE, 0.75).blocks
    mixed = scale_width(LARGE, [1.0] * 5 + [0.5] * (n - 5))
    assert mixed.blocks[:4] == LARGE.blocks[:4] and mixed.blocks[-1] == scale_width(LARGE, 0.5).blocks[-1]
    with pytest.raises(UserError, match="need"):
        scale_width(LARGE, [1.0] * (n - 1))
    with pytest.raises(UserError, match="finite number"):
        scale_width(LARGE, [1.0] * (n - 1) + [float("nan")])


def test_family_reference():
    assert family_reference("large", 50, PIXEL1).name == LARGE.name
    assert family_reference("small", 50, PIXEL1).name == SMALL.name  # the family decides, not the target
    assert family_reference("custom", 14, PIXEL1).name == SMALL.name
    assert family_reference("custom", 45, PIXEL1).name == LARGE.name
