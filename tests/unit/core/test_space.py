import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.runtime.errors import UserError
from nas.core.counts import count_params
from nas.core.space import SPACES_DIR, load_space, space_from_dict
from nas.core.spec import spec_from_dict, spec_from_string
from nas.core.spec_file import load_spec
from nas.runtime.files import load_yaml_file
from helpers import REFERENCE

SPACES = ["mobilenetv3_large", "mobilenetv3_small", "mnasnet"]


@st.composite
def tokens_of(draw, space):
    return [draw(st.integers(0, n - 1)) for n in space.num_choices]


@pytest.mark.parametrize("name", SPACES)
def test_every_token_sequence_decodes_to_a_valid_spec(name):
    space = load_space(name)

    @settings(max_examples=60, deadline=None)
    @given(tokens_of(space))
    def check(tokens):
        spec = space.decode(tokens)
        # Valid: survives the schema and both lossless forms.
        assert spec_from_dict(spec.to_dict()) == spec
        assert spec_from_string(spec.to_string(), name=spec.name) == spec
        for b, (cin, _) in zip(spec.blocks, spec.block_inputs()):
            assert b.exp > 0 and b.out % 8 == 0 and b.k in (3, 5)

    check()


def test_sizes_and_decisions():
    large = load_space("mobilenetv3_large")
    assert len(large.decisions) == 30 and large.size() == (3 * 2 * 2 * 2 * 2 * 3) ** 5
    mnas = load_space("mnasnet")
    assert 1e13 <= mnas.size() <= 1e14  # the paper: about 10^13 networks with 7 stages


def test_mnasnet_space_seed_is_mnasnet_a1():
    seed = load_space("mnasnet").seed_spec()
    a1 = load_spec(REFERENCE / "mnasnet_a1.yaml")
    assert seed.content_hash() == a1.content_hash()
    assert count_params(seed) == 3_887_038


def test_sampling_is_seeded():
    space = load_space("mobilenetv3_large")
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(1)
    assert len({space.sample_spec(rng).content_hash() for _ in range(50)}) == 50


def test_stage_structure():
    space = load_space("mobilenetv3_large")
    tokens = space.seed_tokens()
    spec = space.decode(tokens)
    assert [b.s for b in spec.blocks] == [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1]
    # layers decision: every stage at base + 1
    layer_idx = [i for i, d in enumerate(space.decisions) if d.kind == "layers"]
    more = list(tokens)
    for i in layer_idx:
        more[i] = 2
    assert len(space.decode(more).blocks) == len(spec.blocks) + 5


def test_possible_layers_cover_every_sample():
    space = load_space("mobilenetv3_small")
    possible = {(b, cin, hw) for b, cin, hw in space.possible_layers()}
    rng = np.random.default_rng(0)
    for _ in range(100):
        spec = space.sample_spec(rng)
        for b, (cin, hw) in zip(spec.blocks, spec.block_inputs()):
            assert (b, cin, hw) in possible
    assert space.possible_head_inputs() == [72, 96, 120]


def test_bad_tokens():
    space = load_space("mobilenetv3_small")
    with pytest.raises(UserError, match="expected 24 tokens"):
        space.decode([0] * 3)
    tokens = space.seed_tokens()
    tokens[0] = 99
    with pytest.raises(UserError, match="stage2.layers"):
        space.decode(tokens)


def _base():
    return load_yaml_file(SPACES_DIR / "mobilenetv3_small.yaml")


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["stages"][1].update(k=4), "stages[1].k"),
    (lambda d: d["stages"][1].update(s=3), "stages[1].s"),
    (lambda d: d["stages"][1].update(colour=1), "stages[1].colour"),
    (lambda d: d["stages"][1].update(exp=5), "stages[1].exp"),  # seed not among the options
    (lambda d: d["choices"].update(width=[]), "choices.width"),
    (lambda d: d["choices"].update(act=["relu", "gelu"]), "choices.act[1]"),
    (lambda d: d["choices"].update(k=[3, 3]), "choices.k"),
    (lambda d: d.update(reward_w=0.5), "reward_w"),
    (lambda d: d.update(stages=[]), "stages"),
    (lambda d: d["head"].update(conv=-1), "head.conv"),
    (lambda d: d["stages"][1].update(layers=40), "stages[1].layers"),
])
def test_space_validation_names_field(mutate, field):
    data = _base()
    mutate(data)
    with pytest.raises(UserError) as err:
        space_from_dict(data, source="myspace.yaml")
    assert str(err.value).startswith(f"myspace.yaml: {field}:"), str(err.value)


def test_unknown_space_name():
    with pytest.raises(UserError, match="unknown search space 'nope'.*mobilenetv3_large"):
        load_space("nope")
