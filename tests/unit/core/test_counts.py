"""The one per-layer counter: its rows match the built torch network module by module, the
builder's totals and the calibrated devices' features are sums of the same rows, and the
numbers every user reported before the counter was shared are unchanged."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from helpers import REFERENCE
from nas.core.counts import KINDS, count_macs, count_params, op_counts
from nas.core.model import build_model
from nas.core.space import load_space
from nas.core.spec import scale_width
from nas.core.spec_file import load_spec
from nas.latency.features import FEATURE_NAMES, feature_matrix, spec_features

ZOO = sorted(p.stem for p in REFERENCE.glob("*.yaml"))


def _random_specs(n: int = 6) -> list:
    rng = np.random.default_rng(3)
    return [load_space(name).sample_spec(rng) for name in ("mobilenetv3_large", "mnasnet") for _ in range(n // 2)]


def _hooked(net: nn.Module, resolution: int) -> dict[str, int]:
    """MACs of every conv and linear module, by module path, measured on a forward pass."""
    macs: dict[str, int] = {}

    def hook(name):
        def record(m, inp, out):
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
                macs[name] = k * out.shape[1] * out.shape[2] * out.shape[3]
            else:
                macs[name] = m.in_features * m.out_features
        return record

    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook(name))
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, resolution, resolution))
    return macs


@pytest.mark.parametrize("spec", [load_spec(REFERENCE / f"{n}.yaml") for n in ("mobilenetv3_large", "mnasnet_a1",
                                                                                "mobilenetv2_035")]
                         + _random_specs(), ids=lambda s: s.name)
def test_rows_are_the_modules_of_the_built_network(spec):
    spec = replace(spec, resolution=96)  # the geometry still varies per layer; the forward pass is quick
    net = build_model(spec)
    modules = dict(net.named_modules())
    hooked = _hooked(net, spec.resolution)
    rows = op_counts(spec)
    assert len({r.name for r in rows}) == len(rows) and all(r.kind in KINDS for r in rows)
    for r in rows:
        if r.kind in ("se_scale", "add"):  # elementwise steps: no module, no parameters, no MACs
            assert r.name not in modules and r.macs == r.params == 0
            continue
        m = modules[r.name]
        assert r.params == sum(p.numel() for p in m.parameters()), r.name
        assert r.macs == sum(v for k, v in hooked.items() if k == r.name or k.startswith(r.name + ".")), r.name
    # Every parameter and every hooked multiply-add belongs to exactly one row.
    assert sum(r.params for r in rows) == sum(p.numel() for p in net.parameters()) == count_params(spec)
    assert sum(r.macs for r in rows) == sum(hooked.values()) == count_macs(spec)
    residual = [r for r in rows if r.kind == "add"]
    assert len(residual) == sum(b.use_residual for b in net.blocks)


# Features (raw counts, `ops` a count), MACs and params as the counts were before they were shared.
PINNED = {
    "mobilenetv3_large": ([188762112, 18392640, 9435008, 10173184, 597408, 1511264, 17], 216589760, 5483032),
    "mobilenetv3_small": ([41558272, 7460544, 7491584, 3107776, 285376, 799136, 13], 56510400, 2542856),
    "mnasnet_a1": ([274111488, 25095840, 12371744, 13199424, 597408, 0, 18], 311579072, 3887038),
    "proxylessnas_mobile": ([266886144, 41423424, 12118016, 11872896, 0, 0, 22], 320427584, 4080512),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_counts_and_features_are_unchanged(name):
    spec = load_spec(REFERENCE / f"{name}.yaml")
    features, macs, params = PINNED[name]
    got = spec_features(spec)
    assert [round(x * 1e6) for x in got[:-1]] + [got[-1]] == features
    assert count_macs(spec) == macs and count_params(spec) == params


def test_latency_features_count_the_same_multiply_adds():
    specs = [load_spec(REFERENCE / f"{n}.yaml") for n in ZOO]
    specs += [scale_width(s, 0.6) for s in specs[:4]] + _random_specs(10)
    macs = feature_matrix(specs, ("pw_macs", "dw_macs", "dense_macs")).sum(axis=1)
    np.testing.assert_allclose(macs * 1e6, [count_macs(s) for s in specs], rtol=0, atol=1e-3)
    for s in specs:
        rows = op_counts(s)
        f = dict(zip(FEATURE_NAMES, spec_features(s)))
        assert round(f["memory"] * 1e6) == sum(r.memory for r in rows)
        assert round(f["se_elements"] * 1e6) == sum(r.out for r in rows if r.kind == "se_scale")
        assert f["ops"] == len(s.blocks) + 2
