"""Training a supernet by path sampling, and scoring a path by its inherited accuracy.

Each step trains a few paths on one batch, their gradients summed: `uniform` draws them from the
space, `sandwich` (Yu & Huang's rule) always adds the largest and the smallest network, so that the
first channels of every tensor learn to work alone; a `policy` (the controller's current sampler)
may replace the random draws; a policy with `after_step(training)` learns after every step (TuNAS's
joint search, nas/search/joint.py) and is checkpointed with the weights. Paths and data order are drawn from (seed, epoch), and a checkpoint
after every epoch holds everything else, so a resumed training continues exactly.

Shared BatchNorm statistics belong to no path: `evaluate` re-estimates them for the path it scores
(once-for-all's BN recalibration) on a fixed slice of training images, then measures top-1.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from nas.accuracy.proxy_data import ProxyData
from nas.accuracy.short_training import adapt_spec
from nas.accuracy.training_core import (decay_groups, evaluate_accuracy, optimizer_step, recalibrate_bn,
                                        warmup_cosine)
from nas.core.space import SearchSpace
from nas.core.spec import ArchSpec
from nas.runtime.session import generator, seed_everything
from nas.supernet.supernet_config import SupernetConfig
from nas.supernet.net import Supernet

log = logging.getLogger(__name__)

Policy = Callable[[np.random.Generator], Sequence[int]]


class SupernetTraining:
    """A supernet's training state: epochs of path-sampled SGD, checkpointable between epochs."""

    def __init__(self, space: SearchSpace, data: ProxyData, config: SupernetConfig, seed: int = 0,
                 stem_stride: str | int = "auto", policy: Policy | None = None, rank: int = 0, world: int = 1):
        stride = adapt_spec(space.seed_spec(), data.num_classes, data.resolution, stem_stride).stem.s
        self.space, self.data, self.config, self.seed, self.policy = space, data, config, seed, policy
        # Data parallel (Ray Train): every worker draws the same paths and order, trains on its share
        # of each global batch, and the gradients are averaged before the step, so the weights stay equal.
        self.rank, self.world = rank, world
        seed_everything(seed)
        self.net = Supernet(space, data.num_classes, data.resolution, stride, config.kernel_transform).to(data.device)
        n = int(data.train_x.shape[0])
        self.batch_size = min(config.batch_size, n)
        self.steps_per_epoch = max(1, n // self.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        # No weight decay on BN, biases and the kernel transforms (which start as identities).
        groups = decay_groups(self.net, config.weight_decay,
                              lambda name, p: p.ndim > 1 and ".transforms." not in name)
        self.optimizer = torch.optim.SGD(groups, lr=config.learning_rate, momentum=0.9, nesterov=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           warmup_cosine(self.total_steps, config.warmup))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.epoch = self.step = 0
        self.failure: str | None = None
        self.history: list[dict[str, Any]] = []

    # ---- paths ---------------------------------------------------------------------------
    def paths(self, rng: np.random.Generator) -> list[ArchSpec]:
        c, space = self.config, self.space
        draw = (lambda: list(self.policy(rng))) if self.policy is not None else (lambda: space.sample(rng))
        specs = []
        if c.sampler == "sandwich":
            specs += [self.net.largest(), self.net.smallest()]
        while len(specs) < c.paths:
            specs.append(self.net.adapt(space.decode(draw())))
        return specs

    # ---- training ------------------------------------------------------------------------
    def train_epoch(self, on_step: Callable[[int], None] | None = None) -> float | None:
        gen = generator(self.seed, self.epoch)
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=gen)))  # dropout, per epoch
        n = int(self.data.train_x.shape[0])
        order = torch.randperm(n, generator=gen).to(self.data.device)
        self.net.train()
        total, count = 0.0, 0
        share = self.batch_size // self.world
        for b in range(self.steps_per_epoch):
            start = b * self.batch_size + self.rank * share
            x, y = self.data.train_batch(order[start:start + share])
            failed = []

            def path_losses():
                for spec in self.paths(rng):
                    failed[:] = [spec.name]
                    yield self.criterion(self.net(x, spec), y)

            average = (lambda: average_gradients(self.net)) if self.world > 1 else None
            losses = optimizer_step(self.optimizer, self.scheduler, path_losses(), before_step=average,
                                    clip=(self.net.parameters(), 5.0))
            if losses is None:
                self.failure = f"non-finite loss at step {self.step} on {failed[0]}"
                return None
            loss_sum = sum(float(loss) for loss in losses)
            self.step += 1
            if hasattr(self.policy, "after_step"):
                self.policy.after_step(self)
            total += loss_sum / self.config.paths
            count += 1
            if on_step is not None:
                on_step(1)
        self.epoch += 1
        return total / max(count, 1)

    def run(self, until: int | None = None, on_epoch: Callable[["SupernetTraining"], None] | None = None,
            on_step: Callable[[int], None] | None = None) -> None:
        until = self.config.epochs if until is None else min(until, self.config.epochs)
        while self.epoch < until and self.failure is None:
            started = time.perf_counter()
            loss = self.train_epoch(on_step)
            if self.failure is not None:
                break
            record = {"epoch": self.epoch, "loss": loss, "step": self.step,
                      "seconds": time.perf_counter() - started}
            self.history.append(record)
            log.info("supernet epoch %d/%d: loss %.4f (%.0f s)", self.epoch, self.config.epochs, loss,
                     record["seconds"])
            if on_epoch is not None:
                on_epoch(self)

    # ---- scoring -------------------------------------------------------------------------
    def evaluate(self, spec: ArchSpec, val_images: int | None = None) -> float:
        """Top-1 of `spec`'s path (adapted to the data), BN re-estimated for it; 0 for non-finite outputs."""
        return evaluate_path(self.net, self.net.adapt(spec), self.data, self.config, val_images)

    # ---- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "step": self.step,
                "history": self.history, "supernet": self.net.config(), "config": self.config.as_dict(),
                **({"learner": self.policy.state_dict()} if hasattr(self.policy, "state_dict") else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step, self.history = int(state["epoch"]), int(state["step"]), list(state["history"])
        if hasattr(self.policy, "load_state_dict"):
            self.policy.load_state_dict(state["learner"])


def average_gradients(net: nn.Module) -> None:
    """The workers' mean gradient on every worker (torch.distributed). Every worker trained the same
    paths, so the same parameters have gradients everywhere; one flat all-reduce for all of them."""
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


class PathModel(nn.Module):
    """One path of a supernet as a model of one input, for the proxies' BN recalibration and scoring."""

    def __init__(self, net: Supernet, spec: ArchSpec):
        super().__init__()
        self.net, self.spec = net, spec

    def forward(self, x):
        return self.net(x, self.spec)


def recalibrate_path_bn(net: Supernet, spec: ArchSpec, batches) -> None:
    """Exact BN statistics of `spec`'s path over `batches` (the shared buffers are overwritten)."""
    recalibrate_bn(PathModel(net, spec), batches)
    net.eval()


def evaluate_path(net: Supernet, spec: ArchSpec, data: ProxyData, config: SupernetConfig,
                  val_images: int | None = None) -> float:
    """Top-1 of the path on held-out images after recalibrating its BN; 0 for non-finite outputs."""
    recalibrate_path_bn(net, spec, data.batches("train", config.eval_batch_size, limit=config.bn_images))
    accuracy, finite = evaluate_accuracy(PathModel(net, spec), data.batches("val", config.eval_batch_size,
                                                                             limit=val_images))
    return accuracy if finite else 0.0


def extract_calibrated(net: Supernet, spec: ArchSpec, data: ProxyData, config: SupernetConfig):
    """`net.extract(spec)` with BN statistics re-estimated for the spec's path (the shared buffers
    hold whichever path was scored last)."""
    recalibrate_path_bn(net, spec, data.batches("train", config.eval_batch_size, limit=config.bn_images))
    return net.extract(spec)
