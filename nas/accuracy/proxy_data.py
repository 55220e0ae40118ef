"""In-memory proxy data: a deterministic held-out split, subsets as tensors, batches as model inputs.

Images stay uint8 on the training device (Fashion-MNIST's 60,000 at 32x32 are 61 MB) and become
normalised float only a batch at a time, already in channels-last layout (twice as fast for
MobileNets on CPU, and what cuDNN prefers).
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from nas.runtime.errors import UserError
from nas.accuracy.proxy_config import DataConfig
from nas.accuracy.datasets import ImageSource, open_source

MAX_VAL_POOL = 10_000
log = logging.getLogger(__name__)


@dataclass(eq=False)
class ProxyData:
    """Training and validation subsets of one data set, ready for a proxy."""

    name: str
    num_classes: int
    resolution: int
    train_x: torch.Tensor  # uint8 (N, C, R, R), C = 1 or 3
    train_y: torch.Tensor  # int64 (N,)
    val_x: torch.Tensor
    val_y: torch.Tensor
    mean: torch.Tensor  # float (1, C, 1, 1)
    std: torch.Tensor

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def inputs(self, x: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images -> normalised float, 3 channels, channels-last; `flip` mirrors chosen rows."""
        x = (x.float().div_(255) - self.mean) / self.std
        if flip is not None:
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x.contiguous(memory_format=torch.channels_last)

    def train_batch(self, idx: torch.Tensor, flip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs(self.train_x[idx], flip), self.train_y[idx]

    def batches(self, split: str, batch_size: int, limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of a split in its fixed order (evaluation, BN statistics)."""
        x, y = (self.train_x, self.train_y) if split == "train" else (self.val_x, self.val_y)
        n = x.shape[0] if limit is None else min(limit, x.shape[0])
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            yield self.inputs(x[start:stop]), y[start:stop]

    def minibatch(self, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed random minibatch of the training subset (what zero-cost scores look at)."""
        n = self.train_x.shape[0]
        idx = np.random.default_rng(seed).choice(n, size=min(size, n), replace=False)
        return self.train_batch(torch.as_tensor(np.sort(idx), device=self.device))


def split_indices(n: int, val_size: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training pool, validation pool): a seeded permutation of 0..n-1, the validation part held out."""
    v = min(MAX_VAL_POOL, n // 6) if val_size is None else val_size
    if v < 1 or v >= n:
        raise UserError(f"cannot hold out {v} validation images from {n}", setting="val_size")
    order = np.random.default_rng(seed).permutation(n)
    return order[v:], order[:v]


def load_data(config: DataConfig, train_images: int, val_images: int,
              device: torch.device | str = "cpu") -> ProxyData:
    """The first `train_images` / `val_images` of the two pools, on `device` (cached per process)."""
    return _load_cached(config, train_images, val_images, str(device))


@functools.lru_cache(maxsize=4)
def _load_cached(config: DataConfig, train_images: int, val_images: int, device: str) -> ProxyData:
    source = open_source(config.dataset, config.path)
    train_pool, val_pool = split_indices(len(source), config.val_size, config.split_seed)
    # Subsets are prefixes of the pools, so a smaller budget sees a subset of a larger one's data.
    train_idx, val_idx = train_pool[:train_images], val_pool[:val_images]
    log.debug("data %s (%s): %d train / %d held-out images at %dpx on %s", config.dataset,
              config.path or "default path", len(train_idx), len(val_idx), config.resolution, device)
    return _to_tensors(source, config.resolution, train_idx, val_idx, torch.device(device))


def _to_tensors(source: ImageSource, resolution: int, train_idx: np.ndarray, val_idx: np.ndarray,
                device: torch.device) -> ProxyData:
    def pixels(idx):
        return torch.from_numpy(np.ascontiguousarray(source.load(idx, resolution))).to(device)

    def labels(idx):
        return torch.from_numpy(source.labels[idx]).to(device)

    def stat(values):
        return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    return ProxyData(name=source.name, num_classes=source.num_classes, resolution=resolution,
                     train_x=pixels(train_idx), train_y=labels(train_idx),
                     val_x=pixels(val_idx), val_y=labels(val_idx),
                     mean=stat(source.mean), std=stat(source.std))
