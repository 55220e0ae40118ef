"""Property tests (hypothesis) over arbitrary valid specs, not only those a search space decodes:
the YAML and block-string forms are lossless, and predicted latency never falls as a layer widens."""
from dataclasses import replace

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nas.errors import UserError
from nas.latency.devices import get_device
from nas.spec import (ACTIVATIONS, BlockSpec, HeadSpec, StemSpec, ArchSpec, scale_width, spec_from_dict,
                      spec_from_string, spec_to_yaml)

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


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


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
    """pixel1's model: non-negative costs of features that grow with every width (NNLS fit)."""
    i = data.draw(st.integers(0, len(spec.blocks) - 1))
    grow = data.draw(st.integers(1, 32)) * 8
    b = spec.blocks[i]
    wider = [replace(b, exp=b.exp + grow), replace(b, out=b.out + grow)]
    base = PIXEL1.predict(spec).ms
    for block in wider:
        other = replace(spec, blocks=spec.blocks[:i] + (block,) + spec.blocks[i + 1:])
        assert PIXEL1.predict(other).ms >= base - 1e-9
    for other in (replace(spec, stem=replace(spec.stem, out=spec.stem.out + grow)),
                  replace(spec, head=replace(spec.head, conv=spec.head.conv + grow))):
        assert PIXEL1.predict(other).ms >= base - 1e-9


@SETTINGS
@given(specs(), st.sampled_from([0.35, 0.5, 0.75, 1.0]), st.sampled_from([1.0, 1.25, 1.5, 2.0]))
def test_prediction_grows_with_the_width_multiplier(spec, small, large):
    assert PIXEL1.predict(scale_width(spec, small)).ms <= PIXEL1.predict(scale_width(spec, large)).ms + 1e-9
