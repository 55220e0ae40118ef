"""The search run's config: defaults <- --config file (or a run's saved config.yaml) <- flags.

`RunConfig` is frozen and carries each value's origin, so a bad value is one error naming the
file and key, or the flag, it came from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, TypeVar

from nas.budgets import BUDGETS
from nas.runtime.config import Origins, blame, file_origins, flag, layer, located, read_config_file
from nas.runtime.errors import UserError

T = TypeVar("T")

DEFAULTS: dict[str, Any] = {
    "space": "auto", "device": "pixel1", "proxy": None, "budget": "default", "seed": 0,
    "algorithm": "controller", "reward": "tunas", "reward_w": None, "samples": None,
    "dataset": "fashion-mnist", "data": None, "address": None, "cpus": None, "trial_retries": 1,
}
CONFIG_KEYS = ("target_ms", *DEFAULTS)
RESUME_MAY_CHANGE = ("address", "cpus", "trial_retries")  # where and how it runs, not what it computes
MAX_SAMPLES = 1_000_000


@dataclass(frozen=True)
class RunConfig:
    target_ms: float
    space: str
    device: str
    proxy: str | None
    budget: str
    seed: int
    algorithm: str
    reward: str
    reward_w: float | None
    samples: int | None
    dataset: str
    data: str | None
    address: str | None
    cpus: int | None
    trial_retries: int
    origins: Origins = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The settings alone, as config.yaml holds them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "origins"}

    def blame(self, key: str, message: str) -> UserError:
        return blame(self.origins, key, message)

    def located(self, key: str, make: Callable[[], T]) -> T:
        return located(self.origins, key, make)


def validate_config(config: dict[str, Any], origins: Origins | str) -> RunConfig:
    """Check every setting; `origins` is where each came from (a file name: all from that file)."""
    if isinstance(origins, str):
        origins = file_origins(origins, CONFIG_KEYS)
    config = {**DEFAULTS, **config}

    def fail(key, message):
        return blame(origins, key, message)

    _check_target(config.get("target_ms"), fail)
    _check_choices(config, fail)
    _check_numbers(config, fail)
    for key in ("space", "device", "dataset"):
        if not isinstance(config[key], str) or not config[key].strip():
            raise fail(key, f"must be a non-empty string, got {config[key]!r}")
    for key in ("proxy", "data", "address"):
        if config[key] is not None and (not isinstance(config[key], str) or not config[key].strip()):
            raise fail(key, f"must be a non-empty string, got {config[key]!r}")
    values = {key: config[key] for key in CONFIG_KEYS} | {"target_ms": float(config["target_ms"])}
    return RunConfig(**values, origins=dict(origins))


def _check_target(t, fail) -> None:
    if t is None:
        raise fail("target_ms", "missing: give --target-ms (or target_ms in the --config file)")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise fail("target_ms", f"must be a finite number of milliseconds > 0, got {t!r} (--target-ms)")
    if t > 1e5:
        raise fail("target_ms", f"{t:g} ms is absurd for one inference (at most 100000)")


def _check_choices(config, fail) -> None:
    if config["budget"] not in BUDGETS:
        raise fail("budget", f"must be one of {', '.join(BUDGETS)}, got {config['budget']!r}")
    if config["algorithm"] not in ("controller", "random", "evolution"):
        raise fail("algorithm", f"must be controller, random or evolution, got {config['algorithm']!r}")
    if config["reward"] not in ("mnasnet", "hard", "tunas"):
        raise fail("reward", f"must be mnasnet, hard or tunas, got {config['reward']!r}")


def _check_numbers(config, fail) -> None:
    w = config["reward_w"]
    if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not -2 <= w <= 0):
        raise fail("reward_w", f"must be a number in [-2, 0], got {w!r}")
    if isinstance(config["seed"], bool) or not isinstance(config["seed"], int) or config["seed"] < 0:
        raise fail("seed", f"must be an integer >= 0, got {config['seed']!r}")
    r = config["trial_retries"]
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 100:
        raise fail("trial_retries", f"must be an integer in 0..100, got {r!r}")
    for key in ("samples", "cpus"):
        v = config[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise fail(key, f"must be an integer >= 1, got {v!r}")
    if config["samples"] is not None and config["samples"] > MAX_SAMPLES:
        raise fail("samples", f"{config['samples']} is more than a search can use (at most {MAX_SAMPLES})")
    from nas.runtime.session import available_cpus

    available = available_cpus()
    if config["cpus"] is not None and config["address"] is None and config["cpus"] > available:
        raise fail("cpus", f"this machine lets the run use {available} CPU(s), got {config['cpus']} "
                           f"(a cluster takes --address)")


def given_flags(args) -> dict[str, Any]:
    """The settings given as flags on this command line (None: not given)."""
    return {key: getattr(args, key, None) for key in CONFIG_KEYS}


def new_run_config(args) -> RunConfig:
    """A new run: defaults <- --config file <- flags."""
    file_values = read_config_file(args.config, CONFIG_KEYS) if args.config else {}
    values, origins = layer(DEFAULTS, file_values, args.config, given_flags(args))
    return validate_config(values, origins)


def saved_run_config(run_dir: Path, args) -> RunConfig:
    """A resumed run: its saved config.yaml; a flag may change only where and how it runs."""
    path = run_dir / "config.yaml"
    if not path.exists():
        raise UserError("no config.yaml here: not a run directory to resume", source=str(run_dir))
    origins = file_origins(str(path), CONFIG_KEYS)
    saved = validate_config(read_config_file(path, CONFIG_KEYS), origins).to_dict()
    for key, given in given_flags(args).items():
        if given is not None and key not in RESUME_MAY_CHANGE and given != saved[key]:
            raise UserError(f"{flag(key)} {given} differs from this run's saved {saved[key]!r}; "
                            f"drop the flag to resume, or start a new run", source=str(path))
    changed = {key: v for key, v in given_flags(args).items() if key in RESUME_MAY_CHANGE and v is not None}
    for key in changed:
        origins[key] = (None, flag(key))
    return validate_config({**saved, **changed}, origins)
