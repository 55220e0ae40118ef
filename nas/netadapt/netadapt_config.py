"""What a NetAdapt run depends on: its config, made from a budget of the one table (`nas.budgets`)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.accuracy.proxy_config import DataConfig, TrainConfig
from nas.runtime.jsonl import jsonable
from nas.budgets import BUDGETS, NetAdaptBudget, get_budget
from nas.core.spec import ArchSpec
from nas.runtime.errors import UserError
from nas.runtime.paths import RUNS_DIR, path_slug
from nas.runtime.ray_tune import TRIAL_RETRIES

SELECT_RULES = ("ratio", "accuracy", "noise-aware", "latency")
PARALLEL = ("none", "ray")


@dataclass(frozen=True)
class NetAdaptConfig:
    """Everything a NetAdapt run depends on (plus where it runs: parallel, devices, threads)."""

    target_ms: float
    device: str = "pixel1"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: BUDGETS["default"].netadapt.train)
    steps: int = 20
    final_steps: int = 300
    delta: float = 0.01
    lr_scale: float = 0.1
    select: str = "ratio"
    seed: int = 0
    parallel: str = "none"
    max_iterations: int | None = None
    train_device: str = "auto"
    threads: int | None = None
    address: str | None = None
    trial_retries: int = TRIAL_RETRIES

    def __post_init__(self):
        if not (isinstance(self.target_ms, (int, float)) and math.isfinite(self.target_ms) and self.target_ms > 0):
            raise UserError(f"must be a finite number > 0, got {self.target_ms!r}", setting="target_ms")
        if not 0 < self.delta < 1:
            raise UserError(f"must be a fraction in (0, 1), got {self.delta!r}", setting="delta")
        if not 0 < self.lr_scale <= 10:
            raise UserError(f"must be in (0, 10], got {self.lr_scale!r}", setting="lr_scale")
        for name in ("steps", "final_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"must be an integer >= 0, got {value!r}", setting=name)
        if self.select not in SELECT_RULES:
            raise UserError(f"must be one of {', '.join(SELECT_RULES)}, got {self.select!r}", setting="select")
        if self.parallel not in PARALLEL:
            raise UserError(f"must be one of {', '.join(PARALLEL)}, got {self.parallel!r}", setting="parallel")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"must be an integer >= 0, got {self.seed!r}", setting="seed")

    def finetune(self, steps: int) -> TrainConfig:
        return replace(self.train, steps=max(1, steps), lr=self.train.learning_rate * self.lr_scale)

    def identity(self) -> dict[str, Any]:
        """What changes the results; a resumed run must match it."""
        d = asdict(self)
        for key in ("parallel", "max_iterations", "train_device", "threads", "address", "trial_retries"):
            d.pop(key)
        return jsonable(d)


def netadapt_budget(budget: str | NetAdaptBudget) -> NetAdaptBudget:
    """A budget's NetAdapt part, by name (an unknown one is the one-line `--budget` error)."""
    return get_budget(budget).netadapt if isinstance(budget, str) else budget


def make_config(target_ms: float, device: str = "pixel1", budget: str | NetAdaptBudget = "default",
                data: DataConfig | None = None, seed: int = 0, **overrides: Any) -> NetAdaptConfig:
    """A config from a budget; `overrides` replace single fields (steps, final_steps, delta, train, ...)."""
    b = netadapt_budget(budget)
    base = dict(target_ms=target_ms, device=device, data=data or DataConfig(), train=b.train, steps=b.steps,
                final_steps=b.final_steps, delta=b.delta, lr_scale=b.lr_scale, parallel=b.parallel, seed=seed)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return NetAdaptConfig(**base)


def stream_seed(seed: int, *stream: int) -> int:
    """An independent seed per (run seed, iteration): proposals of one iteration see the same batches."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0] % 2**31)


def default_out(spec: ArchSpec, device: str, target_ms: float, seed: int) -> Path:
    slug = path_slug(f"{spec.name}-{Path(device).stem}")
    return RUNS_DIR / f"netadapt-{slug}-{target_ms:g}ms-s{seed}"
