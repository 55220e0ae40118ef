"""Property tests (hypothesis) over arbitrary valid specs, not only those a search space decodes:
the YAML and block-string forms are lossless, and predicted latency never falls as a layer widens."""
from dataclasses import replace

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nas.runtime.errors import UserError
from nas.latency.devices import get_device
from nas.core.spec import (ACTIVATIONS, ArchSpec, BlockSpec, HeadSpec, StemSpec, has_residual, scale_width,
                      spec_from_dict, spec_from_string, spec_to_yaml)

channels = st.integers(1, 160).map(lambda c: 8 * c)  # 8 .. 1280
acts = st.sampled_from(ACTIVATIONS)


@st.composite
def blocks(draw):
    return BlockSpec(k=draw(st.sampled_from([1, 3, 5, 7])), exp=draw(st.integers(8, 1536)), out=draw(channels),
                     se=draw(st.booleans()), act=draw(acts), s=draw(st.sampled_from([1, 2])),
                     skip=draw(st.booleans()))


@st.composite
def specs(draw):
    spec = ArchSpec(
        name=draw(st.text(min_size=1, max_size=30).filter(lambda s: s.strip() and s == s.strip() and s.isprintable())),
        resolution=draw(st.integers(8, 64).map(lambda r: 4 * r)),
        num_classes=draw(st.integers(1, 2000)),
        stem=StemSpec(out=draw(channels), k=draw(st.sampled_from([3, 5])), s=draw(st.sampled_from([1, 2])),
                      act=draw(acts)),
        blocks=tuple(draw(st.lists(blocks(), min_size=1, max_size=8))),
        head=HeadSpec(conv=draw(channels), act=draw(acts), fc=draw(st.none() | channels),
                      dropout=draw(st.sampled_from([0.0, 0.2, 0.5]))),
        se_style=draw(st.sampled_from(["mobilenetv3", "mnasnet"])))
    try:  # only what the schema accepts (e.g. the feature map must not vanish)
        spec_from_dict(spec.to_dict())
    except UserError:
        assume(False)
    return spec


# derandomize: CI sees the same 150 examples every run (explore more with --hypothesis-seed and
# a larger max_examples when changing the spec or latency code).
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.filter_too_much])


@SETTINGS
@given(specs())
def test_yaml_round_trip(spec):
    assert spec_from_dict(yaml.safe_load(spec_to_yaml(spec))) == spec


@SETTINGS
@given(specs())
def test_block_string_round_trip(spec):
    again = spec_from_string(spec.to_string(), name=spec.name)
    assert again == spec and again.content_hash() == spec.content_hash()


PIXEL1 = get_device("pixel1")


@SETTINGS
@given(specs(), st.data())
def test_prediction_never_falls_as_a_layer_widens(spec, data):
    """pixel1's model: non-negative costs of features that grow with every width (NNLS fit).

    The exceptions are the architecture's, not the model's, and hypothesis found both: a block whose
    expanded width comes to equal its input width loses its 1x1 expand conv (exp 232 -> 360 on a
    360-channel input: 17.2 -> 2.3 ms), and one whose input no longer equals its output loses its
    residual add (stem 24 -> 32 before a 24 -> 24 block). Such a network really is cheaper.
    """
    i = data.draw(st.integers(0, len(spec.blocks) - 1))
    grow = data.draw(st.integers(1, 32)) * 8
    b = spec.blocks[i]
    base = PIXEL1.predict(spec).ms
    wider = [replace(spec, blocks=spec.blocks[:i] + (block,) + spec.blocks[i + 1:])
             for block in (replace(b, exp=b.exp + grow), replace(b, out=b.out + grow))]
    wider += [replace(spec, stem=replace(spec.stem, out=spec.stem.out + grow)),
              replace(spec, head=replace(spec.head, conv=spec.head.conv + grow))]
    for other in wider:
        if lost_a_layer(spec, other):
            continue
        assert PIXEL1.predict(other).ms >= base - 1e-9


def lost_a_layer(before, after) -> bool:
    """Whether widening removed an expand conv (exp == in) or a residual add (in != out)."""
    def parts(spec):
        return [(b.exp != cin, has_residual(b, cin)) for b, (cin, _) in zip(spec.blocks, spec.block_inputs())]
    return any(x and not y for a, b in zip(parts(before), parts(after)) for x, y in zip(a, b))


@SETTINGS
@given(specs(), st.sampled_from([0.35, 0.5, 0.75, 1.0]), st.sampled_from([1.0, 1.25, 1.5, 2.0]))
def test_prediction_grows_with_the_width_multiplier(spec, small, large):
    narrow, wide = scale_width(spec, small), scale_width(spec, large)
    assume(not lost_a_layer(narrow, wide))
    assert PIXEL1.predict(narrow).ms <= PIXEL1.predict(wide).ms + 1e-9
