"""MobileNetV3's training recipe and how it is scaled to a smaller data set, batch and length.

The paper (section 6.1) trains with TensorFlow's RMSProp (momentum 0.9), a learning rate of 0.1 at
batch 4096 decayed by 1% (rate 0.99) every 3 epochs, dropout 0.2 before the classifier, L2 weight
decay 1e-5, and evaluates an exponential moving average (EMA) of the weights with decay 0.9998.
It does not give its length; the scaling below takes 350 ImageNet epochs, the length of
TensorFlow's reference training of MnasNet, the network MobileNetV3's search starts from.

Scaling to B images per batch, S steps per epoch and E epochs (T = S x E steps):

- learning rate: linear in the batch, 0.1 x B / 4096;
- decay: the paper's schedule as a fraction of training: 0.99 every 3/350 of the run, i.e. the
  rate falls smoothly (per step) to 0.99^(350/3) = 0.31 of its peak at the end;
- EMA: the paper's time constant, 1 / (1 - 0.9998) = 5,000 steps, is 4.6% of its 350 x 312.8
  steps; here it is the same 4.6% of T, so decay = 1 - 1 / (0.0457 T) (as TensorFlow's EMA with
  `num_updates`, the decay is min(decay, (1 + t) / (10 + t)) early on);
- warm-up: linear over the first 5% of steps, which the paper does not have (see docs/training.md:
  torch's RMSProp starts its square average at 0 where TensorFlow starts it at 1, so its first
  steps are several times the learning rate, and a small data set gives few steps to recover);
- momentum, RMSProp decay and epsilon, weight decay (torch's, the same gradient as TF-slim's L2
  regulariser of 1e-5) and dropout are the paper's as they are.

Torch-free, so the command's flag errors answer before torch loads.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nas.runtime.errors import UserError


@dataclass(frozen=True)
class PaperRecipe:
    """The paper's hyper-parameters, at its scale (ImageNet, batch 4096)."""

    lr: float = 0.1
    batch_size: int = 4096
    momentum: float = 0.9
    decay_rate: float = 0.99       # "decay rate 0.01": the rate is multiplied by 0.99 ...
    decay_epochs: float = 3.0      # ... every 3 epochs
    epochs: float = 350.0          # not stated in the paper: TensorFlow's reference length (see above)
    train_images: int = 1_281_167  # ImageNet's training set
    ema_decay: float = 0.9998
    weight_decay: float = 1e-5
    dropout: float = 0.2

    @property
    def steps_per_epoch(self) -> float:
        return self.train_images / self.batch_size

    @property
    def total_decay(self) -> float:
        """The learning rate's end-of-training fraction of its peak."""
        return self.decay_rate ** (self.epochs / self.decay_epochs)

    @property
    def ema_fraction(self) -> float:
        """The EMA's time constant as a fraction of the whole training."""
        return 1.0 / (1.0 - self.ema_decay) / (self.epochs * self.steps_per_epoch)


PAPER = PaperRecipe()
WARMUP_FRACTION = 0.05


@dataclass(frozen=True)
class Recipe:
    """The scaled recipe one training runs (what train.json and --json print as `recipe`)."""

    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    dropout: float
    batch_size: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    warmup_steps: int
    final_lr_fraction: float
    ema_decay: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scale_recipe(batch_size: int, steps_per_epoch: int, epochs: int, paper: PaperRecipe = PAPER,
                 warmup: float = WARMUP_FRACTION) -> Recipe:
    """The paper's recipe for `epochs` epochs of `steps_per_epoch` steps at `batch_size` (module doc)."""
    if steps_per_epoch < 1:
        raise UserError(f"fewer training images than one batch of {batch_size}", setting="batch_size")
    total = steps_per_epoch * epochs
    tau = paper.ema_fraction * total  # the EMA's time constant in steps
    return Recipe(optimizer="rmsprop", lr=paper.lr * batch_size / paper.batch_size, momentum=paper.momentum,
                  weight_decay=paper.weight_decay, dropout=paper.dropout, batch_size=batch_size,
                  steps_per_epoch=steps_per_epoch, epochs=epochs, total_steps=total,
                  warmup_steps=int(round(warmup * total)), final_lr_fraction=paper.total_decay,
                  ema_decay=max(0.0, 1.0 - 1.0 / tau) if tau > 1 else 0.0)


class LrSchedule:
    """The learning-rate factor at a step: linear warm-up, times a smooth exponential decay that
    reaches `final_lr_fraction` at the last step. A class, not a closure, so that LambdaLR's state
    (a checkpoint's) holds its plain numbers."""

    def __init__(self, recipe: Recipe):
        self.total_steps = recipe.total_steps
        self.warmup_steps = recipe.warmup_steps
        self.final_lr_fraction = recipe.final_lr_fraction

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return warm * self.final_lr_fraction ** (min(step, self.total_steps) / self.total_steps)


def ema_decay_at(recipe: Recipe, updates: int) -> float:
    """The EMA's decay at its `updates`-th update: TensorFlow's min(decay, (1 + n) / (10 + n))."""
    return min(recipe.ema_decay, (1.0 + updates) / (10.0 + updates))


def split_batch(batch_size: int, workers: int) -> int:
    """Images per worker for a global batch (data-parallel workers each take an equal share)."""
    if batch_size % workers:
        raise UserError(f"the batch of {batch_size} does not split evenly over {workers} workers: give a "
                        f"multiple of {workers}", setting="batch_size")
    if batch_size // workers < 2:
        raise UserError(f"{batch_size} images over {workers} workers leaves fewer than 2 per worker "
                        "(BatchNorm needs 2)", setting="batch_size")
    return batch_size // workers
