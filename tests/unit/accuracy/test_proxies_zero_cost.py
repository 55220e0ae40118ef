"""Zero-cost proxies: each formula against an independent computation on a hand-sized network; finite and
repeatable on a tiny spec, and orders widths sensibly."""
import math

import numpy as np
import pytest
import torch

from nas.runtime.errors import UserError
from nas.accuracy import ZERO_COST, adapt_spec, zero_cost_score
from nas.core.spec import scale_width
from helpers.data import one_torch_thread  # noqa: F401 (autouse fixture)
from helpers.data import TINY

REQUIRED = {"naswot", "synflow", "grad_norm", "zen", "params", "macs"}


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 32, 32, generator=gen).contiguous(memory_format=torch.channels_last)
    return images, torch.arange(16) % 10


@pytest.fixture(scope="module")
def tiny():
    return adapt_spec(TINY, 10, 32)


def test_registry_has_the_required_proxies():
    from nas.runtime.registry import PROXIES

    assert REQUIRED <= set(ZERO_COST) and list(ZERO_COST) == PROXIES.names(kind="zero-cost")  # the CLI's list is the registry's
    with pytest.raises(UserError, match="unknown zero-cost proxy"):
        zero_cost_score("oracle", TINY, torch.zeros(1), torch.zeros(1))


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_score_is_finite_and_repeatable(name, tiny, batch):
    first = zero_cost_score(name, tiny, *batch, seed=0)
    assert math.isfinite(first)
    assert zero_cost_score(name, tiny, *batch, seed=0) == first


@pytest.mark.parametrize("name", ["params", "macs", "synflow", "zen"])
def test_wider_network_scores_higher(name, tiny, batch):
    wide = scale_width(tiny, 2.0)
    assert zero_cost_score(name, wide, *batch) > zero_cost_score(name, tiny, *batch)


def test_naswot_sees_more_distinct_codes_in_a_wider_network(tiny, batch):
    # More units give binary codes that tell the images apart better: a larger log-determinant.
    assert zero_cost_score("naswot", scale_width(tiny, 2.0), *batch) > zero_cost_score("naswot", tiny, *batch)


def test_synflow_ignores_batchnorm_and_data(tiny, batch):
    images, labels = batch
    assert zero_cost_score("synflow", tiny, images, labels) == zero_cost_score("synflow", tiny, images * 7 + 3, labels)


# ---- the formulas, against independent computations on a hand-sized network ---------------------
# Each proxy builds its network with `_network`; here that returns TinyNet (1x1 convs on 2x2
# images: a per-pixel linear map), so each score can be recomputed from the weights in a few lines.

class TinyNet(torch.nn.Module):
    """stem (1x1 conv, BN, ReLU) -> no blocks -> head.conv (1x1 conv, BN, Hardswish) -> pool -> Linear."""

    def __init__(self, head_act=torch.nn.Hardswish):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
        self.blocks = nn.Sequential()
        self.head = nn.Module()
        self.head.conv = nn.Sequential(nn.Conv2d(4, 3, 1), nn.BatchNorm2d(3), head_act())
        self.classifier = nn.Linear(3, 5)

    def forward(self, x):
        return self.classifier(self.head.conv(self.blocks(self.stem(x))).mean(dim=(2, 3)))


@pytest.fixture
def tiny_net(monkeypatch):
    """Make every proxy score TinyNet (random, with negative weights and biases); returns the nets built."""
    import nas.accuracy.zero_cost as zc

    built = []

    def network(spec, seed, device):  # `spec`: options for the test's net, in place of an ArchSpec
        torch.manual_seed(seed)
        net = TinyNet(spec.get("head_act", torch.nn.Hardswish)).to(spec.get("dtype", torch.float32))
        built.append(net)
        return net

    monkeypatch.setattr(zc, "_network", network)
    return built


def _tiny_batch(n=8, dtype=torch.float32):
    gen = torch.Generator().manual_seed(4)
    return torch.randn(n, 3, 2, 2, generator=gen, dtype=dtype), torch.arange(n) % 5


def _params(net):
    """The layers' weights and biases as float64 numpy arrays (1x1 convs flattened to matrices)."""
    layers = [net.stem[0], net.head.conv[0], net.classifier]
    return [(m.weight.detach().double().reshape(m.weight.shape[0], -1).numpy(), m.bias.detach().double().numpy())
            for m in layers]


def _conv1x1(x, w, b):  # x (n, c, h, w) numpy
    return np.einsum("oc,nchw->nohw", w, x) + b[None, :, None, None]


def _bn_train(z, eps=1e-5):  # batch statistics, biased variance, gamma 1, beta 0
    mean = z.mean(axis=(0, 2, 3), keepdims=True)
    return (z - mean) / np.sqrt(z.var(axis=(0, 2, 3), keepdims=True) + eps)


def _hswish(z):
    return z * np.clip(z + 3, 0, 6) / 6


def test_naswot_is_the_log_det_of_the_activation_code_kernel(tiny_net):
    images, labels = _tiny_batch()
    got = zero_cost_score("naswot", {}, images, labels, seed=0)
    (w1, b1), (w2, b2), _ = _params(tiny_net[0])
    x = images.double().numpy()
    a1 = np.maximum(_bn_train(_conv1x1(x, w1, b1)), 0)
    a2 = _hswish(_bn_train(_conv1x1(a1, w2, b2)))
    codes = np.concatenate([(a1 > 0).reshape(len(x), -1), (a2 > 0).reshape(len(x), -1)], axis=1).astype(float)
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T  # units on which images i and j agree
    assert kernel[0, 0] == codes.shape[1] == 4 * 4 + 3 * 4
    sign, logdet = np.linalg.slogdet(kernel)
    assert sign > 0 and got == pytest.approx(logdet, rel=1e-9)


def test_synflow_is_the_log_of_the_summed_weight_times_gradient_of_the_positive_net(tiny_net):
    images, labels = _tiny_batch()
    torch.manual_seed(0)
    before = _params(TinyNet(torch.nn.ReLU))  # the weights `network` draws for seed 0, before abs
    got = zero_cost_score("synflow", {"head_act": torch.nn.ReLU}, images * 5 - 2, labels, seed=0)
    (w1, b1), (w2, b2), (w3, b3) = [(np.abs(w), np.abs(b)) for w, b in before]
    # All-ones input, everything positive, BN gone: each pixel is z2 = W2 (W1 1 + b1) + b2, and
    # R = sum(W3 z2 + b3). g2 = dR/dz2 (the pool averages 4 equal pixels), g1 = dR/d(stem output).
    z1 = w1 @ np.ones(3) + b1
    z2 = w2 @ z1 + b2
    g2 = w3.sum(axis=0)
    g1 = w2.T @ g2
    total = (w3 * z2[None, :]).sum() + (w2 * np.outer(g2, z1)).sum() + (w1 * g1[:, None]).sum()
    assert got == pytest.approx(math.log(total), rel=1e-9)


def test_grad_norm_is_the_sum_of_the_layers_gradient_norms(tiny_net):
    images, labels = _tiny_batch(dtype=torch.float64)
    got = zero_cost_score("grad_norm", {"dtype": torch.float64}, images, labels, seed=0)
    # The same network written out with functional ops, differentiated on its own.
    (w1, b1), (w2, b2), (w3, b3) = [(torch.tensor(w, requires_grad=True), torch.tensor(b)) for w, b in
                                    _params(tiny_net[0])]

    def bn(z):
        return (z - z.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(z.var(dim=(0, 2, 3), unbiased=False,
                                                                            keepdim=True) + 1e-5)

    a1 = torch.relu(bn(torch.einsum("oc,nchw->nohw", w1, images) + b1[None, :, None, None]))
    a2 = torch.nn.functional.hardswish(bn(torch.einsum("oc,nchw->nohw", w2, a1) + b2[None, :, None, None]))
    logits = a2.mean(dim=(2, 3)) @ w3.T + b3
    logp = logits.log_softmax(1)
    loss = -logp[torch.arange(len(labels)), labels].mean()
    grads = torch.autograd.grad(loss, [w1, w2, w3])
    expected = sum(float(torch.sqrt((g ** 2).sum())) for g in grads)
    assert got == pytest.approx(expected, rel=1e-9)


def test_zen_is_the_log_feature_sensitivity_plus_the_log_bn_scales(tiny_net):
    from nas.accuracy.zero_cost import ZEN_MIXUP
    from nas.runtime.session import generator

    images, labels = _tiny_batch(n=16)
    got = zero_cost_score("zen", {}, images, labels, seed=3)
    (w1, _), (w2, _), _ = _params(tiny_net[0])  # Gaussian after zen's re-initialisation; biases zero
    gen = generator(3, 0x2E4)
    x = torch.randn(images.shape, generator=gen).double().numpy()
    noise = torch.randn(images.shape, generator=gen).double().numpy()
    sigmas = []

    def features(t, record):
        z1 = np.einsum("oc,nchw->nohw", w1, t)
        a1 = np.maximum(_bn_train(z1), 0)
        z2 = np.einsum("oc,nchw->nohw", w2, a1)
        if record:  # the BN inputs' scale, of the unperturbed pass
            sigmas.extend(0.5 * math.log(z.var(axis=(0, 2, 3)).mean()) for z in (z1, z2))
        return _hswish(_bn_train(z2))

    delta = np.abs(features(x, True) - features(x + ZEN_MIXUP * noise, False)).sum(axis=(1, 2, 3)).mean()
    assert not np.allclose(w1, _params(TinyNet())[0][0])  # really re-drawn
    # float32 features differenced at a 0.01 scale: ~1e-6 relative is what float32 allows (7e-7 seen).
    assert got == pytest.approx(math.log(delta) + sum(sigmas), rel=5e-6)


def test_params_counts_every_trainable_weight(tiny):
    from nas.core.model import build_model

    expected = sum(p.numel() for p in build_model(tiny).parameters())
    assert zero_cost_score("params", tiny, torch.zeros(1), torch.zeros(1)) == expected
