"""Zero-cost proxies: a score from an untrained network (higher is better), in well under a second.

Every score takes the spec as the proxy trains it (`adapt_spec`), one minibatch of real images
and labels (some use only its shape) and a seed, and builds its own network, because each one
needs the network in a different state:

- naswot (Mellor et al., ICML 2021): log-determinant of the kernel of binary activation codes
  over one minibatch; BN in train mode (batch statistics), MobileNet initialisation.
- synflow (Tanaka et al. 2020, as a NAS proxy in Abdelfattah et al., ICLR 2021): sum over weights
  of |w * dR/dw| where R is the output sum for an all-ones input, with BN removed, all weights
  made positive and the arithmetic in float64. Reported as its natural log: the raw value spans
  hundreds of orders of magnitude and only its order matters.
- grad_norm (Abdelfattah et al. 2021): sum over conv and linear layers of the gradient norm of the
  cross-entropy on one minibatch; BN in train mode.
- zen (Lin et al., ICCV 2021): log of the expected change of the pre-pooling feature map under a
  small input perturbation, plus the sum of log BN standard deviations; Gaussian weights and
  Gaussian inputs, BN in train mode (the batch statistics of the unperturbed pass).
- params, macs: the trivial baselines, from the spec alone.

Their names and summaries, and the lookup by name, are in `nas.accuracy.zero_cost_table`, which
needs no torch: the proxies' names register without loading it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.core.counts import count_macs, count_params
from nas.core.model import build_model
from nas.runtime.session import generator
from nas.core.spec import ArchSpec

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU)
ZEN_MIXUP = 0.01  # the perturbation scale of Zen-NAS


def _network(spec: ArchSpec, seed: int, device: torch.device) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(spec).to(device, memory_format=torch.channels_last)


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ---- NASWOT ---------------------------------------------------------------------------------

def naswot(spec: ArchSpec, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """log|K|, K[i, j] = number of units on which images i and j have the same on/off state."""
    model = _network(spec, seed, images.device).train()
    n = images.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=images.device)

    def record(module, inputs, output):
        # Every activation here is positive exactly where its input is, so the output's sign is
        # the unit's binary code (ReLU's in the paper).
        codes = (output.detach().flatten(1) > 0).float()
        active = codes.sum(1)
        # Agreements c c^T + (1 - c)(1 - c)^T, with one matrix product instead of two.
        agree = 2 * (codes @ codes.T) - active[:, None] - active[None, :] + codes.shape[1]
        kernel.add_(agree.double())

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for h in hooks:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


# ---- synflow --------------------------------------------------------------------------------

def _without_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _without_batchnorm(child)


def synflow(spec: ArchSpec, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """log sum |w * dR/dw|, R = sum of the outputs of the BN-free, all-positive net on an all-ones input."""
    model = _network(spec, seed, images.device)
    _without_batchnorm(model)
    model = model.double().eval()  # eval: dropout off
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    model(ones).sum().backward()
    with torch.no_grad():
        total = sum(float((m.weight * m.weight.grad).abs().sum()) for m in _weighted_layers(model))
    return math.log(total) if 0 < total < math.inf else (-math.inf if total == 0 else math.inf)


# ---- grad_norm ------------------------------------------------------------------------------

def grad_norm(spec: ArchSpec, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Sum over conv and linear layers of ||dL/dW|| for the cross-entropy of one minibatch."""
    model = _network(spec, seed, images.device).train()
    F.cross_entropy(model(images), labels).backward()
    with torch.no_grad():
        return float(sum(m.weight.grad.norm() for m in _weighted_layers(model)))


# ---- Zen-score ------------------------------------------------------------------------------

def zen(spec: ArchSpec, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """log E|f(x) - f(x + 0.01 e)| + sum_BN log sqrt(mean batch variance), f = features before pooling."""
    model = _network(spec, seed, images.device).train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    gen = generator(seed, 0x2E4)
    x = torch.randn(images.shape, generator=gen).to(images.device, memory_format=torch.channels_last)
    noise = torch.randn(images.shape, generator=gen).to(images.device, memory_format=torch.channels_last)

    def features(t):
        return model.head.conv(model.blocks(model.stem(t)))

    log_sigma = []

    def record(module, inputs, output):
        var = inputs[0].detach().var(dim=(0, 2, 3), unbiased=False)
        log_sigma.append(0.5 * float(torch.log(var.mean())))

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    hooks = [m.register_forward_hook(record) for m in bns]
    with torch.no_grad():
        try:
            clean = features(x)
        finally:
            for h in hooks:
                h.remove()
        perturbed = features(x + ZEN_MIXUP * noise)
        delta = (clean - perturbed).abs().sum(dim=(1, 2, 3)).mean()
    return float(torch.log(delta)) + sum(log_sigma)


# ---- baselines ------------------------------------------------------------------------------

def params(spec: ArchSpec, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    return float(count_params(spec))


def macs(spec: ArchSpec, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    return float(count_macs(spec))
