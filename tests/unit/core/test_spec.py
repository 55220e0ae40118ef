import dataclasses
import random

import pytest
import torch

from nas.runtime.errors import UserError
from nas.core.check import Checker
from nas.core.counts import count_macs, count_params
from nas.core.model import build_model
from nas.core.spec import ArchSpec, BlockSpec, make_divisible, scale_width, spec_from_dict, spec_from_string, spec_to_yaml
from nas.core.spec_file import load_spec
from helpers import REFERENCE

# docs/reference.md: exact parameter counts (1000 classes) and multiply-adds (conv + linear).
EXACT = {
    "mobilenetv3_large": (5_483_032, 216.6),
    "mobilenetv3_small": (2_542_856, 56.5),
    "mobilenetv2_100": (3_504_872, 300.8),
    "mnasnet_b1": (4_383_312, 314.4),
    "mnasnet_a1": (3_887_038, 311.6),
    "mnasnet_small": (2_030_264, 68.3),
    "mobilenetv3_large_minimalistic": (3_924_288, 209.1),
    "mobilenetv3_large_relu": (5_483_032, 216.6),
    "mobilenetv3_small_minimalistic": (2_044_736, 52.3),
    "proxylessnas_mobile": (4_080_512, 320.4),
}
ZOO = sorted(p.stem for p in REFERENCE.glob("*.yaml"))


def test_zoo_is_complete():
    assert set(EXACT) | {"mobilenetv3_large_075", "mobilenetv3_small_075", "mobilenetv2_035"} == set(ZOO)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_reference_exact_counts(name):
    spec = load_spec(REFERENCE / f"{name}.yaml")
    params, macs_m = EXACT[name]
    assert count_params(spec) == params
    assert count_macs(spec) / 1e6 == pytest.approx(macs_m, abs=0.05)


@pytest.mark.parametrize("name", ZOO)
def test_builder_matches_analytic_params(name):
    spec = load_spec(REFERENCE / f"{name}.yaml")
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == count_params(spec)


def _hooked_macs(model, resolution):
    """MACs of conv and linear layers, measured on a forward pass (independent of count_macs)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            total += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            total += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, resolution, resolution))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", ["mobilenetv3_large", "mnasnet_a1", "mobilenetv2_035"])
def test_builder_matches_analytic_macs(name):
    spec = load_spec(REFERENCE / f"{name}.yaml")
    assert _hooked_macs(build_model(spec), spec.resolution) == count_macs(spec)


def random_spec(rng: random.Random) -> ArchSpec:
    blocks = []
    cin = stem_out = rng.choice([8, 16, 24])
    for _ in range(rng.randint(1, 6)):
        out = rng.choice([8, 16, 24, cin])
        exp = rng.choice([cin, cin * 3, 40, 8])
        blocks.append(BlockSpec(k=rng.choice([3, 5, 7]), exp=exp, out=out, se=rng.random() < 0.5,
                                act=rng.choice(["relu", "relu6", "hswish", "swish"]), s=rng.choice([1, 2]),
                                skip=rng.random() < 0.8))
        cin = out
    return spec_from_dict({
        "name": "random", "resolution": rng.choice([32, 57, 64]), "num_classes": rng.choice([10, 100]),
        "se_style": rng.choice(["mobilenetv3", "mnasnet"]),
        "stem": {"out": stem_out, "k": 3, "s": rng.choice([1, 2]), "act": "hswish"},
        "blocks": [dataclasses.asdict(b) for b in blocks],
        "head": {"conv": rng.choice([32, 64]), "act": "relu", "fc": rng.choice([None, 48]), "dropout": 0.1},
    })


@pytest.mark.parametrize("seed", range(8))
def test_random_specs_build_and_count(seed):
    spec = random_spec(random.Random(seed))
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == count_params(spec)
    assert _hooked_macs(model, spec.resolution) == count_macs(spec)
    assert model(torch.zeros(2, 3, spec.resolution, spec.resolution)).shape == (2, spec.num_classes)


@pytest.mark.parametrize("name", ZOO)
def test_yaml_and_string_round_trips(name, tmp_path):
    spec = load_spec(REFERENCE / f"{name}.yaml")
    path = tmp_path / "spec.yaml"
    path.write_text(spec_to_yaml(spec))
    assert load_spec(path) == spec
    again = spec_from_string(spec.to_string(), name=spec.name)
    assert again == spec
    assert again.content_hash() == spec.content_hash()


def test_content_hash_is_stable_and_ignores_the_name():
    spec = load_spec(REFERENCE / "mobilenetv3_large.yaml")
    # A literal: changing the hash silently would orphan every cached evaluation.
    assert spec.content_hash() == "32a3190964a30dec"
    assert dataclasses.replace(spec, name="other").content_hash() == spec.content_hash()
    changed = spec.with_blocks([dataclasses.replace(spec.blocks[0], k=5), *spec.blocks[1:]])
    assert changed.content_hash() != spec.content_hash()


def test_block_string_form():
    spec = load_spec(REFERENCE / "mobilenetv3_large.yaml")
    assert spec.block_strings()[4] == "ir_k5_e120_c40_s1_se_re"
    assert spec.block_strings()[-1] == "ir_k5_e960_c160_s1_se_hs"
    proxyless = load_spec(REFERENCE / "proxylessnas_mobile.yaml")
    assert proxyless.block_strings()[0] == "ir_k3_e32_c16_s1_r6_noskip"


def test_make_divisible():
    assert make_divisible(72 / 4) == 24  # never more than 10% below
    assert make_divisible(30) == 32
    assert make_divisible(12) == 16
    assert make_divisible(11.2) == 16
    assert make_divisible(3) == 8


def test_width_multiplier_follows_the_released_checkpoints():
    large = load_spec(REFERENCE / "mobilenetv3_large.yaml")
    l075 = scale_width(large, 0.75)
    assert count_macs(l075) / 1e6 == pytest.approx(154.6, abs=0.05)
    assert count_params(l075) / 1e6 == pytest.approx(3.99, abs=0.005)
    assert l075.head.fc == 1280 and l075.head.conv == 720
    assert load_spec(REFERENCE / "mobilenetv3_large_075.yaml").content_hash() == l075.content_hash()
    assert scale_width(large, 1.0).content_hash() == large.content_hash()
    v2 = load_spec(REFERENCE / "mobilenetv2_100.yaml")
    v2_035 = scale_width(v2, 0.35)
    assert v2_035.stem.out == 16 and v2_035.head.conv == 1280 and v2_035.blocks[0].exp == 16
    assert [b.out for b in v2_035.blocks][:2] == [8, 8]


def test_residual_and_expansion_rules():
    large = build_model(load_spec(REFERENCE / "mobilenetv3_large.yaml"))
    first = large.blocks[0]
    assert first.expand is None and first.use_residual  # DS 16 -> 16 with skip
    assert not large.blocks[1].use_residual  # stride 2
    a1 = build_model(load_spec(REFERENCE / "mnasnet_a1.yaml"))
    assert a1.blocks[0].expand is None and not a1.blocks[0].use_residual  # separable 32 -> 16
    se = a1.blocks[3].se  # first SE layer: input 24 -> squeeze int(24 * 0.25) = 6, sigmoid gate
    assert se.reduce.out_channels == 6 and isinstance(se.gate, torch.nn.Sigmoid)
    small = build_model(load_spec(REFERENCE / "mobilenetv3_small.yaml"))
    assert small.blocks[0].se.reduce.out_channels == 8 and isinstance(small.blocks[0].se.gate, torch.nn.Hardsigmoid)


BASE = {"name": "t", "resolution": 32, "stem": {"out": 16},
        "blocks": [{"k": 3, "exp": 16, "out": 16, "se": False, "act": "relu", "s": 1}],
        "head": {"conv": 32, "act": "relu"}}


def _with(path, value):
    import copy
    data = copy.deepcopy(BASE)
    node = data
    *parents, last = path
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize("path, value, field, words", [
    (("blocks", 0, "k"), 4, "blocks[0].k", "odd"),
    (("blocks", 0, "s"), 3, "blocks[0].s", "stride"),
    (("blocks", 0, "out"), 0, "blocks[0].out", "> 0"),
    (("blocks", 0, "exp"), -8, "blocks[0].exp", "> 0"),
    (("blocks", 0, "act"), "gelu", "blocks[0].act", "relu"),
    (("blocks", 0, "se"), "yes", "blocks[0].se", "true or false"),
    (("blocks", 0, "k"), "3", "blocks[0].k", "integer"),
    (("blocks", 0, "k"), True, "blocks[0].k", "integer"),
    (("blocks", 0, "kernel"), 3, "blocks[0].kernel", "unknown key"),
    (("blocks", 0, "out"), 10**9, "blocks[0].out", "between"),
    (("blocks", 0, "k"), KeyError, "blocks[0].k", "missing"),
    (("resolution",), 100000, "resolution", "between"),
    (("resolution",), 224.5, "resolution", "integer"),
    (("stem", "act"), "tanh", "stem.act", "one of"),
    (("head", "dropout"), 1.5, "head.dropout", "[0, 1)"),
    (("head", "pool"), "max", "head.pool", "avg"),
    (("head",), [1, 2], "head", "mapping"),
    (("blocks",), [], "blocks", "non-empty"),
    (("extra",), 1, "extra", "unknown key"),
    (("name",), "", "name", "non-empty"),
    (("se_style",), "timm", "se_style", "mnasnet"),
])
def test_validation_names_file_and_field(path, value, field, words):
    with pytest.raises(UserError) as err:
        spec_from_dict(_with(path, value), source="my.yaml")
    message = str(err.value)
    assert message.startswith(f"my.yaml: {field}:"), message
    assert words in message


def test_bad_strings():
    with pytest.raises(UserError, match="bad block string"):
        spec_from_string("net_r224_n10 stem_k3_c16_s2_hs ir_k3_x16 head_c32_re_d0.2")
    with pytest.raises(UserError, match="unknown activation"):
        spec_from_string("net_r224_n10 stem_k3_c16_s2_hs ir_k3_e16_c16_s1_zz head_c32_re_d0.2")
    with pytest.raises(UserError, match="odd"):
        spec_from_string("net_r224_n10 stem_k3_c16_s2_hs ir_k4_e16_c16_s1_re head_c32_re_d0.2")


# ---- the Checker every loader in core and latency reads through ---------------------------------

@pytest.mark.parametrize("value, kwargs, words", [
    (float("nan"), {}, "expected a finite number, got nan"),
    (True, {"lo": 0.0}, "expected a finite number >= 0, got True"),
    (-0.5, {"lo": 0.0}, "expected a finite number >= 0, got -0.5"),
    (0.1, {"hi": 0.0}, "expected a finite number <= 0, got 0.1"),
    (0, {"lo": 0, "above": True, "what": "a finite latency", "unit": "in ms"},
     "expected a finite latency > 0 in ms, got 0"),
    (17, {"lo": 0.1, "hi": 16, "what": "a ratio"}, "expected a ratio between 0.1 and 16, got 17"),
    ("3", {"lo": -2, "hi": 0, "what": "a number"}, "expected a number between -2 and 0, got '3'"),
])
def test_checker_number_names_file_field_and_bound(value, kwargs, words):
    with pytest.raises(UserError) as err:
        Checker("f.yaml").number(value, "a.b", **kwargs)
    assert str(err.value) == f"f.yaml: a.b: {words}"


def test_checker_accepts_what_it_asks_for():
    c = Checker("f.yaml")
    assert c.number(3, "x", lo=0, above=True) == 3.0 and isinstance(c.number(3, "x"), float)
    assert c.number(0.0, "x", lo=0.0) == 0.0 and c.number(-2, "x", -2, 0) == -2.0
    assert c.text(" a ", "x") == " a "
    for bad in ("", "  ", None, 3):
        with pytest.raises(UserError, match="f.yaml: x: expected a spec path, got"):
            c.text(bad, "x", what="a spec path")
