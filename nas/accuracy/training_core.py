"""The training core under the three training loops (a proxy's short training, `nas.train`'s
full recipe and the supernet's path sampling): the optimiser and its weight-decay groups, one step
over one or more losses with a non-finite loss stopping it, the learning-rate shape, BN
re-estimation and top-1. Each loop keeps only what is its own: data order, workers, paths, EMA.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import nn

from nas.accuracy.proxy_config import TrainConfig


def decay_groups(model: nn.Module, weight_decay: float,
                 decays: Callable[[str, nn.Parameter], bool] = lambda name, p: p.ndim > 1) -> list[dict]:
    """Parameter groups: weight decay on those `decays` picks (weights, not BN scales or biases)."""
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if decays(n, p)], "weight_decay": weight_decay},
            {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov) or RMSProp (MobileNetV3's, TF-style epsilon); no weight decay on BN and biases."""
    groups = decay_groups(model, config.weight_decay)
    lr = config.learning_rate
    if config.optimizer == "rmsprop":
        # TF adds epsilon inside the square root; 0.0316 here is about TF's 1e-3 there.
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=0.0316, momentum=config.momentum)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.momentum > 0)


def optimizer_step(optimizer: torch.optim.Optimizer, scheduler, losses: Iterable[torch.Tensor], *,
                   clip: tuple[Iterable[nn.Parameter], float] | None = None,
                   before_step: Callable[[], None] | None = None) -> list[torch.Tensor] | None:
    """One step: each loss (one, or a supernet's paths on one batch) backpropagated as it comes,
    then `before_step` (averaging workers' gradients), clipping, the step and the schedule.
    Returns the detached losses; None, with no step taken, at the first non-finite loss."""
    optimizer.zero_grad(set_to_none=True)
    done = []
    for loss in losses:
        if not torch.isfinite(loss):
            return None
        loss.backward()
        done.append(loss.detach())
    if before_step is not None:
        before_step()
    if clip is not None:
        nn.utils.clip_grad_norm_(*clip)
    optimizer.step()
    scheduler.step()
    return done


def warmup_cosine(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over `warmup` of the steps, then cosine decay to 0."""
    warm = int(round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Replace BN running statistics by exact averages over `batches` (no-op when there are none)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    batches = iter(batches)
    first = next(batches, None)
    if first is None or not bns:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    model(first[0])
    for x, _ in batches:
        model(x)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, bool]:
    """(top-1 accuracy, whether every output was finite)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long)
    total = 0
    finite = True
    for x, y in batches:
        logits = model(x)
        finite = finite and bool(torch.isfinite(logits).all())
        correct += (logits.argmax(1) == y).sum().cpu()
        total += y.shape[0]
    return (float(correct) / total if total else 0.0), finite
