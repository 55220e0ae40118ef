"""Short proxy training of one spec: adapt it to the data, train, re-estimate BN, report top-1.

A diverging network (non-finite loss or outputs) is a result, not a crash: accuracy 0 and
`failed` set, so that a search scores it and moves on.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import torch
from torch import nn

from nas.core.counts import count_macs, count_params
from nas.core.model import build_model
from nas.accuracy.proxy_config import TrainConfig
from nas.accuracy.proxy_data import ProxyData
from nas.accuracy.training_core import (evaluate_accuracy, make_optimizer, optimizer_step, recalibrate_bn,
                                        warmup_cosine)
from nas.runtime.session import generator, seed_everything
from nas.core.spec import ArchSpec

log = logging.getLogger(__name__)


def adapt_spec(spec: ArchSpec, num_classes: int, resolution: int, stem_stride: str | int = "auto") -> ArchSpec:
    """The spec as a proxy trains it: the data's classes and resolution, and (see DataConfig) its stem stride.

    Only the classifier width, the input size and possibly the stem stride change: every searched
    decision (blocks, widths, kernels, SE, activations) stays as the search chose it.
    """
    adapted = replace(spec, num_classes=num_classes, resolution=resolution)
    if stem_stride == "auto":
        stride = 1 if adapted.head_input()[1] < 2 else spec.stem.s
    elif stem_stride == "keep":
        stride = spec.stem.s
    else:
        stride = int(stem_stride)
    if stride != adapted.stem.s:
        adapted = replace(adapted, stem=replace(adapted.stem, s=stride))
    return adapted


@dataclass
class TrainResult:
    accuracy: float
    failed: bool
    reason: str | None
    seconds: float
    epochs: int
    steps: int
    loss: float | None
    train_images: int
    val_images: int
    params: int
    macs: int
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Trainer:
    """One network's training state; a Tune trial checkpoints it between epochs and resumes it."""

    def __init__(self, spec: ArchSpec, data: ProxyData, config: TrainConfig, seed: int = 0,
                 stem_stride: str | int = "auto"):
        self.started = time.perf_counter()  # seconds count model building too
        self.spec = adapt_spec(spec, data.num_classes, data.resolution, stem_stride)
        self.data, self.config, self.seed = data, config, seed
        n = data.train_x.shape[0]
        self.batch_size = min(config.batch_size, n)
        self.steps_per_epoch = max(1, n // self.batch_size)  # drop the ragged last batch: BN needs > 1 row
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self.total_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        seed_everything(seed)
        self.model = build_model(self.spec).to(data.device, memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(self.total_steps, config.warmup))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.epoch = 0
        self.step = 0
        self.failure: str | None = None
        self.history: list[dict[str, Any]] = []

    # ---- training ------------------------------------------------------------------------
    def train_epoch(self) -> float | None:
        """One pass over a fresh permutation (fixed by seed and epoch); the mean loss, or None on divergence."""
        gen = generator(self.seed, self.epoch)
        n = self.data.train_x.shape[0]
        order = torch.randperm(n, generator=gen).to(self.data.device)
        flips = (torch.rand(n, generator=gen) < 0.5).to(self.data.device) if self.config.augment else None
        self.model.train()
        total = torch.zeros((), device=self.data.device)
        count = 0
        for b in range(self.steps_per_epoch):
            if self.step >= self.total_steps:
                break
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x, y = self.data.train_batch(idx, None if flips is None else flips[idx])
            clip = None if self.config.clip_grad is None else (self.model.parameters(), self.config.clip_grad)
            losses = optimizer_step(self.optimizer, self.scheduler, [self.criterion(self.model(x), y)], clip=clip)
            if losses is None:
                self.failure = f"non-finite loss at step {self.step}"
                return None
            self.step += 1
            total += losses[0]
            count += 1
        self.epoch += 1
        return float(total) / max(count, 1)

    def evaluate(self) -> float:
        """Top-1 on the validation subset after re-estimating BN statistics; 0 if outputs diverge."""
        c = self.config
        recalibrate_bn(self.model, self.data.batches("train", c.eval_batch_size, limit=c.bn_images))
        accuracy, finite = evaluate_accuracy(self.model, self.data.batches("val", c.eval_batch_size))
        if not finite:
            self.failure = "non-finite outputs at evaluation"
            return 0.0
        return accuracy

    def run(self, on_epoch: Callable[["Trainer", dict[str, Any]], None] | None = None) -> TrainResult:
        """Train to the end; with `on_epoch`, evaluate after every epoch and pass it the record."""
        last_record = self.history[-1] if self.history else {}  # a run resumed at its end keeps its result
        accuracy, loss = last_record.get("accuracy", 0.0), last_record.get("loss")
        while self.epoch < self.total_epochs and self.failure is None:
            loss = self.train_epoch()
            if self.failure is not None:
                break
            last = self.epoch == self.total_epochs
            if on_epoch is not None or last:
                accuracy = self.evaluate()
                record = {"epoch": self.epoch, "accuracy": accuracy, "loss": loss, "step": self.step,
                          "failed": self.failure is not None}
                self.history.append(record)
                if on_epoch is not None:
                    on_epoch(self, record)
        if self.failure is not None:
            log.debug("%s diverged after %d step(s): %s", self.spec.name, self.step, self.failure)
            accuracy = 0.0
            if on_epoch is not None and (not self.history or not self.history[-1]["failed"]):
                record = {"epoch": self.epoch, "accuracy": 0.0, "loss": None, "step": self.step, "failed": True}
                self.history.append(record)
                on_epoch(self, record)
        return TrainResult(
            accuracy=accuracy, failed=self.failure is not None, reason=self.failure,
            seconds=time.perf_counter() - self.started, epochs=self.epoch, steps=self.step, loss=loss,
            train_images=int(self.data.train_x.shape[0]), val_images=int(self.data.val_x.shape[0]),
            params=count_params(self.spec), macs=count_macs(self.spec), history=list(self.history))

    # ---- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "step": self.step,
                "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], list(state["history"])


def train_spec(spec: ArchSpec, data: ProxyData, config: TrainConfig, seed: int = 0,
               stem_stride: str | int = "auto") -> TrainResult:
    """Train `spec` (adapted to `data`) with `config` and return its validation top-1."""
    return Trainer(spec, data, config, seed, stem_stride).run()
