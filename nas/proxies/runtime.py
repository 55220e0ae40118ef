"""Where and how a proxy runs: device choice, explicit thread counts, seeding."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from nas.errors import UserError


def available_cpus() -> int:
    """CPUs this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads explicitly (Ray sets OMP_NUM_THREADS per task; torch may not follow)."""
    n = threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or available_cpus()
    torch.set_num_threads(n)
    return n


def select_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when there is a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA device is available here", field="--device")
    if name not in ("cpu", "cuda"):
        raise UserError(f"must be auto, cpu or cuda, got {name!r}", field="--device")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed every generator a run might touch; cuDNN picks deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU torch generator for one named stream (e.g. seed, epoch): resumable and order-independent."""
    mixed = np.random.SeedSequence([seed, *stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))
