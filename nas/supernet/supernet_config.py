"""How a supernet is trained and how it scores a path: plain frozen data with no torch import, so
that budgets and flags can hold it."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nas.runtime.errors import UserError

SAMPLERS = ("sandwich", "uniform")


@dataclass(frozen=True)
class SupernetConfig:
    """Every field is part of a trained supernet's identity (a resumed training must share them)."""

    epochs: int = 3
    train_images: int = 10000
    val_images: int = 1000           # held-out images each scored path is measured on
    batch_size: int = 128
    learning_rate: float = 0.2       # SGD, Nesterov momentum 0.9, warm-up then cosine decay
    weight_decay: float = 4e-5
    warmup: float = 0.05
    label_smoothing: float = 0.1
    sampler: str = "sandwich"
    paths: int = 4                   # paths per step (sandwich: largest + smallest + paths-2 random)
    kernel_transform: bool = False   # once-for-all's learned kernel transform
    bn_images: int = 512             # training images that re-estimate BN for each scored path
    eval_batch_size: int = 500

    def __post_init__(self):
        for name in ("epochs", "train_images", "val_images", "batch_size", "paths", "bn_images", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"must be a positive integer, got {value!r}", setting=name)
        if self.sampler not in SAMPLERS:
            raise UserError(f"must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}", setting="sampler")
        if self.sampler == "sandwich" and self.paths < 2:
            raise UserError("the sandwich rule trains at least the largest and the smallest path", setting="paths")
        if not 0 < self.learning_rate <= 10:
            raise UserError(f"must be in (0, 10], got {self.learning_rate!r}", setting="learning_rate")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
