"""What a proxy evaluation is: the data task and the training recipe.

Everything here is plain frozen data with a dict form, so that a configuration can travel into a
Ray trial, key a result cache, and be printed in a report. The named sizes of proxy and reference
training are the accuracy parts of the one budget table, `nas.budgets`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from nas.runtime.errors import UserError

DATASETS = ("fashion-mnist", "cifar10", "cifar100", "imagefolder")
OPTIMIZERS = ("sgd", "rmsprop")
DEVICES = ("auto", "cpu", "cuda")
# Peak learning rates for a batch of 256, scaled linearly with the batch size (Goyal et al. 2017):
# SGD 0.2 is CIFAR's usual 0.1 at batch 128. Some MobileNets sampled from the spaces collapse to
# chance (loss stuck at ln 10) at 0.5 per 128 images over 5 epochs.
BASE_LR = {"sgd": 0.2, "rmsprop": 0.016}


# ---- validation -----------------------------------------------------------------------------

def _check_int(value: Any, name: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UserError(f"must be an integer in [{lo}, {hi}], got {value!r}", setting=name)


def _check_float(value: Any, name: str, lo: float, hi: float, zero_ok: bool = True) -> None:
    """A finite number in [lo, hi) (or (lo, hi) when zero_ok is false and lo is 0)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (lo <= value if zero_ok else lo < value) or not value < hi:
        interval = f"{'[' if zero_ok else '('}{lo:g}, {hi:g})"
        raise UserError(f"must be a finite number in {interval}, got {value!r}", setting=name)


def _check_choice(value: Any, options: tuple[str, ...], name: str) -> None:
    if value not in options:
        raise UserError(f"must be one of {', '.join(options)}, got {value!r}", setting=name)


def _build(cls, d: Mapping[str, Any], where: str):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise UserError(f"unknown keys {sorted(unknown)} (allowed: {', '.join(sorted(names))})", field=where)
    return cls(**d)



@dataclass(frozen=True)
class DataConfig:
    """The proxy task: which images, at which resolution, and how a spec is adapted to them.

    `stem_stride` "auto" sets the stem's stride to 1 when the spec's own strides would shrink the
    last feature map to 1x1 at this resolution (MobileNetV3 at 32x32); an integer forces it and
    "keep" leaves the spec alone. The held-out validation pool is `val_size` images (default
    min(10,000, n/6)) drawn from the training set with `split_seed`; the official test split is
    never used.
    """

    dataset: str = "fashion-mnist"
    path: str | None = None
    resolution: int = 32
    stem_stride: str | int = "auto"
    val_size: int | None = None
    split_seed: int = 0

    def __post_init__(self):
        _check_choice(self.dataset, DATASETS, "dataset")
        _check_int(self.resolution, "resolution", 8, 1024)
        if self.stem_stride not in ("auto", "keep", 1, 2):
            raise UserError(f"must be auto, keep, 1 or 2, got {self.stem_stride!r}", setting="stem_stride")
        if self.val_size is not None:
            _check_int(self.val_size, "val_size", 1, 10**8)
        if self.dataset == "imagefolder" and not self.path:
            raise UserError("an ImageFolder data set needs a path: give --data PATH", setting="data")


@dataclass(frozen=True)
class TrainConfig:
    """Short training of one network: subset sizes, length, optimizer and schedule.

    `steps`, when set, replaces `epochs` as the length. The learning rate follows a linear
    warm-up over the first `warmup` fraction of steps, then a cosine decay to zero; gradients are
    clipped to a global norm of `clip_grad` (None: not clipped). `bn_images`
    training images re-estimate the BatchNorm statistics before every evaluation: with the
    MobileNet momentum of 0.01, a few dozen steps leave the running statistics far from the data.
    """

    train_images: int = 2000
    val_images: int = 2000
    epochs: int = 1
    steps: int | None = None
    batch_size: int = 64
    eval_batch_size: int = 500
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup: float = 0.05
    clip_grad: float | None = 5.0
    label_smoothing: float = 0.0
    augment: bool = True
    bn_images: int = 1000

    def __post_init__(self):
        _check_int(self.train_images, "train_images", 2, 10**8)
        _check_int(self.val_images, "val_images", 1, 10**8)
        _check_int(self.epochs, "epochs", 1, 10**4)
        if self.steps is not None:
            _check_int(self.steps, "steps", 1, 10**8)
        _check_int(self.batch_size, "batch_size", 2, 65536)
        _check_int(self.eval_batch_size, "eval_batch_size", 1, 65536)
        _check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        if self.lr is not None:
            _check_float(self.lr, "lr", 0.0, math.inf, zero_ok=False)
        _check_float(self.momentum, "momentum", 0.0, 1.0)
        _check_float(self.weight_decay, "weight_decay", 0.0, 1.0)
        _check_float(self.warmup, "warmup", 0.0, 1.0)
        if self.clip_grad is not None:
            _check_float(self.clip_grad, "clip_grad", 0.0, math.inf, zero_ok=False)
        _check_float(self.label_smoothing, "label_smoothing", 0.0, 1.0)
        _check_int(self.bn_images, "bn_images", 0, 10**8)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else BASE_LR[self.optimizer] * self.batch_size / 256


@dataclass(frozen=True)
class ProxyConfig:
    """A training proxy in full: task, recipe, seed and where it runs."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self):
        _check_choice(self.device, DEVICES, "device")
        if self.threads is not None:
            _check_int(self.threads, "threads", 1, 1024)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProxyConfig":
        rest = {k: v for k, v in d.items() if k not in ("data", "train")}
        return _build(cls, {**rest, "data": _build(DataConfig, d.get("data", {}), "data"),
                            "train": _build(TrainConfig, d.get("train", {}), "train")}, "proxy config")

    def fingerprint(self) -> str:
        """Identity of everything that changes a result (device and threads do not, by design)."""
        d = self.to_dict()
        d.pop("device"), d.pop("threads")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def stem_stride_flag(text: str) -> str | int:
    """--stem-stride's values, as an argparse type: auto, keep, 1 or 2."""
    if text in ("auto", "keep", "1", "2"):
        return int(text) if text.isdigit() else text
    raise argparse.ArgumentTypeError(f"must be auto, keep, 1 or 2, got {text!r}")


def data_from_flags(args) -> DataConfig:
    """The data set the commands' --dataset, --data, --resolution and --stem-stride name (the reader
    a --data directory needs when --dataset is not given; Fashion-MNIST when neither is)."""
    dataset = args.dataset
    if dataset is None:
        from nas.accuracy.datasets import detect_dataset  # deferred: loads torch

        dataset = detect_dataset(args.data) if args.data else "fashion-mnist"
    return DataConfig(dataset=dataset, path=args.data, resolution=args.resolution, stem_stride=args.stem_stride)


def with_length(config: TrainConfig, epochs: int | None = None, steps: int | None = None) -> TrainConfig:
    """The same recipe run for another number of epochs or steps."""
    if steps is not None:
        return replace(config, steps=steps)
    if epochs is not None:
        return replace(config, epochs=epochs, steps=None)
    return config
