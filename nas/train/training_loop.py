"""The training loop one process runs: alone, or as one of Ray Train's data-parallel workers.

Every epoch is a fresh permutation of the training subset drawn from (seed, epoch), and each
global batch is cut into equal shares, one per worker (rank); the torch RNG (dropout) is reseeded
from (seed, epoch, rank) at each epoch's start. So an epoch depends only on the state at its
start, and a run resumed from a checkpoint continues exactly as an uninterrupted one (bit for bit
on one process on the CPU).
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from typing import Any, Callable, Mapping

import torch
from torch import nn

from nas.accuracy.proxy_config import TrainConfig
from nas.accuracy.proxy_data import ProxyData
from nas.accuracy.training_core import make_optimizer, optimizer_step
from nas.core.model import build_model
from nas.core.spec import ArchSpec
from nas.runtime.errors import UserError
from nas.runtime.session import generator, seed_everything
from nas.train.recipe import LrSchedule, Recipe, ema_decay_at

log = logging.getLogger(__name__)


def training_spec(adapted: ArchSpec, recipe: Recipe) -> ArchSpec:
    """The adapted spec with the recipe's dropout before the classifier (weights do not depend on it)."""
    return replace(adapted, head=replace(adapted.head, dropout=recipe.dropout))


def check_fits(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, what: str) -> None:
    """One line naming the first tensor of `state` that does not fit `model` (missing, extra, or shaped otherwise)."""
    ours = model.state_dict()
    for name, tensor in ours.items():
        if name not in state:
            raise UserError(f"no tensor {name} (the {what} has it): the weights are of another network",
                            source=source, setting="init")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise UserError(f"{name} has shape {tuple(state[name].shape)}, the {what} needs {tuple(tensor.shape)}",
                            source=source, setting="init")
    extra = [k for k in state if k not in ours]
    if extra:
        raise UserError(f"tensor {extra[0]} is not in the {what}: the weights are of another network",
                        source=source, setting="init")


class EMA:
    """An exponential moving average of a model's parameters and BN statistics (TensorFlow's rule)."""

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module, recipe: Recipe) -> None:
        weight = 1.0 - ema_decay_at(recipe, self.updates)
        self.updates += 1
        for mine, theirs in zip(self.model.parameters(), model.parameters()):
            mine.lerp_(theirs.detach(), weight)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            if mine.is_floating_point():
                mine.lerp_(theirs, weight)
            else:  # BN's batch counter
                mine.copy_(theirs)


class Training:
    """One network's training state under the scaled recipe; `wrap` makes the module that runs
    forward and backward (Ray Train's DistributedDataParallel), the rest works on the bare model."""

    def __init__(self, spec: ArchSpec, data: ProxyData, recipe: Recipe, seed: int = 0, *, rank: int = 0,
                 world: int = 1, init: Mapping[str, torch.Tensor] | None = None,
                 wrap: Callable[[nn.Module], nn.Module] | None = None):
        self.spec, self.data, self.recipe, self.seed, self.rank, self.world = spec, data, recipe, seed, rank, world
        self.per_worker = recipe.batch_size // world
        seed_everything(seed)
        self.model = build_model(spec).to(data.device, memory_format=torch.channels_last)
        if init is not None:
            self.model.load_state_dict(init)
        self.ema = EMA(self.model)
        self.optimizer = make_optimizer(self.model, TrainConfig(
            optimizer=recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, LrSchedule(recipe))
        self.criterion = nn.CrossEntropyLoss()
        self.net = wrap(self.model) if wrap is not None else self.model
        self.epoch = 0
        self.step = 0
        self.failure: str | None = None
        self.history: list[dict[str, Any]] = []

    def train_epoch(self, progress: Callable[[int], None] | None = None) -> float | None:
        """One epoch; its mean loss (this worker's), or None when the loss turns non-finite."""
        r = self.recipe
        started = time.perf_counter()
        torch.manual_seed(generator(self.seed, self.epoch, self.rank).initial_seed())
        gen = generator(self.seed, self.epoch)
        n = self.data.train_x.shape[0]
        order = torch.randperm(n, generator=gen).to(self.data.device)
        flips = (torch.rand(n, generator=gen) < 0.5).to(self.data.device)
        self.net.train()
        total = torch.zeros((), device=self.data.device)
        for b in range(r.steps_per_epoch):
            start = b * r.batch_size + self.rank * self.per_worker
            idx = order[start:start + self.per_worker]
            x, y = self.data.train_batch(idx, flips[idx])
            losses = optimizer_step(self.optimizer, self.scheduler, [self.criterion(self.net(x), y)])
            if losses is None:
                self.failure = f"non-finite loss at step {self.step} (epoch {self.epoch + 1})"
                return None
            self.ema.update(self.model, r)
            self.step += 1
            total += losses[0]
            if progress is not None:
                progress(1)
        self.epoch += 1
        mean = float(total) / r.steps_per_epoch
        self.history.append({"epoch": self.epoch, "step": self.step, "loss": mean,
                             "lr": self.optimizer.param_groups[0]["lr"],
                             "seconds": time.perf_counter() - started})
        return mean

    # ---- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"model": self.model.state_dict(), "ema": self.ema.model.state_dict(), "ema_updates": self.ema.updates,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": rng, "epoch": self.epoch, "step": self.step, "data_order_seed": self.seed,
                "history": list(self.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.ema.updates = int(state["ema_updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step, self.history = int(state["epoch"]), int(state["step"]), list(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and "cuda" in state["rng"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def run_epochs(training: Training, until: int, on_epoch: Callable[[Training], None],
               progress: Callable[[int], None] | None = None) -> None:
    """Train epoch after epoch up to epoch `until` (or a divergence), calling `on_epoch` after each."""
    while training.epoch < until and training.failure is None:
        loss = training.train_epoch(progress)
        if loss is not None and training.rank == 0:
            h = training.history[-1]
            log.info("epoch %d/%d: loss %.4f, lr %.3g, %.1f s", h["epoch"], training.recipe.epochs, loss, h["lr"],
                     h["seconds"])
        on_epoch(training)
