"""The search run's config: defaults <- --config file (or a run's saved config.yaml) <- flags.

`RunConfig` is frozen and carries each value's origin, so a bad value is one error naming the
file and key, or the flag, it came from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, TypeVar

from nas.runtime.settings import (Origins, blame, describe_origin, file_origins, flag, layer, located,
                                read_config_file)
from nas.runtime.errors import UserError
from nas.runtime.registry import ALGORITHMS, BUDGETS, REWARDS
from nas.runtime.cli import MAX_SEED
from nas.runtime.ray_tune import TRIAL_RETRIES
from nas.runtime.session import available_cpus

T = TypeVar("T")

DEFAULTS: dict[str, Any] = {
    "space": "auto", "device": "pixel1", "proxy": None, "budget": "default", "seed": 0,
    "algorithm": "guided-evolution", "reward": None, "reward_w": None, "samples": None,
    "dataset": "fashion-mnist", "data": None, "address": None, "cpus": None, "trial_retries": TRIAL_RETRIES, "baselines": None,
    "deploy": None, "supernet": None,
}
BASELINES = ("width_scaled", "netadapted")  # what the compare stage can set beside the final network
DEPLOY = ("tflite", "int8")  # what the deploy stage makes beside final.onnx (None: both)
CONFIG_KEYS = ("target_ms", *DEFAULTS)
RESUME_MAY_CHANGE = ("address", "cpus", "trial_retries")  # where and how it runs, not what it computes
MAX_SAMPLES = 1_000_000
MIN_TARGET_MS = 0.01
MAX_TARGETS = 8  # a family: one search, NetAdapt and comparison per target


@dataclass(frozen=True)
class RunConfig:
    target_ms: float | tuple[float, ...]  # several: a family (see nas.pipeline.family)
    space: str
    device: str
    proxy: str | None
    budget: str
    seed: int
    algorithm: str
    reward: str | None   # None: the algorithm's (hard for a target_only searcher, else tunas)
    reward_w: float | None
    samples: int | None
    dataset: str
    data: str | None
    address: str | None
    cpus: int | None
    trial_retries: int
    baselines: list[str] | None
    deploy: list[str] | None
    supernet: str | None
    origins: Origins = field(default_factory=dict, compare=False, repr=False)

    @property
    def targets(self) -> tuple[float, ...]:
        return self.target_ms if isinstance(self.target_ms, tuple) else (self.target_ms,)

    @property
    def is_family(self) -> bool:
        return isinstance(self.target_ms, tuple)

    def for_target(self, target_ms: float, supernet: str | None) -> "RunConfig":
        """One member of a family: this run's settings at one target (and the family's supernet)."""
        return replace(self, target_ms=float(target_ms), supernet=supernet if supernet else self.supernet)

    def to_dict(self) -> dict[str, Any]:
        """The settings alone, as config.yaml holds them."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "origins"}
        return values | {"target_ms": list(self.target_ms) if self.is_family else self.target_ms}

    def blame(self, key: str, message: str) -> UserError:
        return blame(self.origins, key, message)

    def located(self, key: str, make: Callable[[], T]) -> T:
        return located(self.origins, key, make)

    def origin(self, key: str) -> str:
        """Where `key`'s value came from: "default", "python", "flag --seed" or "FILE:key"."""
        return describe_origin(self.origins, key)


def validate_config(config: dict[str, Any], origins: Origins | str) -> RunConfig:
    """Check every setting; `origins` is where each came from (a file name: all from that file).

    Settings are checked in `config`'s order (a file's own order: with several bad values, the
    error names the first in the file), then the defaults."""
    if isinstance(origins, str):
        origins = file_origins(origins, CONFIG_KEYS)
    order = [*dict.fromkeys([*config, *CONFIG_KEYS])]
    config = {**DEFAULTS, **config}

    def fail(key, message):
        return blame(origins, key, message)

    for key in order:
        if key in _CHECKS:
            _CHECKS[key](config, key, fail)
    t = config["target_ms"]
    values = {key: config[key] for key in CONFIG_KEYS} | {
        "target_ms": tuple(float(x) for x in t) if isinstance(t, list) else float(t)}
    return RunConfig(**values, origins=dict(origins))


def _check_target(config, key, fail) -> None:
    """One target, or a family's list of 2..MAX_TARGETS distinct targets."""
    t = config.get(key)
    if t is None:
        raise fail("target_ms", "missing: give --target-ms (or target_ms in the --config file)")
    if isinstance(t, list):
        if not 2 <= len(t) <= MAX_TARGETS:
            raise fail("target_ms", f"a family takes 2 to {MAX_TARGETS} targets, got {len(t)} "
                                    "(one target: a number, not a list)")
        for x in t:
            _check_one_target(x, fail)
        if len(set(t)) != len(t):
            raise fail("target_ms", f"a family's targets must differ, got {t!r}")
        return
    _check_one_target(t, fail)


def _check_one_target(t, fail) -> None:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise fail("target_ms", f"must be a finite number of milliseconds > 0 (or a list of them), got {t!r} "
                                "(--target-ms)")
    if t > 1e5:
        raise fail("target_ms", f"{t:g} ms is absurd for one inference (at most 100000)")
    if t < MIN_TARGET_MS:  # (LAT/T) overflows the rewards long before 0
        raise fail("target_ms", f"{t:g} ms is below any inference (at least {MIN_TARGET_MS:g})")


def _check_text(optional: bool):
    def check(config, key, fail) -> None:
        v = config[key]
        if (v is not None or not optional) and (not isinstance(v, str) or not v.strip()):
            raise fail(key, f"must be a non-empty string, got {v!r}")
    return check


def _check_reward_w(config, key, fail) -> None:
    w = config[key]
    if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not -2 <= w <= 0):
        raise fail(key, f"must be a number in [-2, 0], got {w!r}")


def _check_seed(config, key, fail) -> None:
    if isinstance(config[key], bool) or not isinstance(config[key], int) or not 0 <= config[key] <= MAX_SEED:
        raise fail(key, f"must be an integer in 0..{MAX_SEED}, got {config[key]!r}")


def _check_retries(config, key, fail) -> None:
    r = config[key]
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 100:
        raise fail(key, f"must be an integer in 0..100, got {r!r}")


def _check_count(config, key, fail) -> None:
    v = config[key]
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise fail(key, f"must be an integer >= 1, got {v!r}")
    if key == "samples" and v is not None and v > MAX_SAMPLES:
        raise fail(key, f"{v} is more than a search can use (at most {MAX_SAMPLES})")
    if key == "cpus" and v is not None and config["address"] is None:
        available = available_cpus()
        if v > available:
            raise fail(key, f"this machine lets the run use {available} CPU(s), got {v} (a cluster takes --address)")


def _check_baselines(config, key, fail) -> None:
    v = config[key]
    if v is None:
        return
    if not isinstance(v, list) or any(b not in BASELINES for b in v) or len(set(v)) != len(v):
        raise fail(key, f"must be a list of distinct names from {', '.join(BASELINES)} (or none), got {v!r}")


def _check_supernet(config, key, fail) -> None:
    """A trained supernet to reuse (a directory or its supernet.pt): only with the supernet proxy."""
    v = config[key]
    if v is None:
        return
    if not isinstance(v, str) or not v.strip():
        raise fail(key, f"must be a path to a trained supernet, got {v!r}")
    if config.get("proxy") != "supernet" and config.get("algorithm") != "tunas":
        raise fail(key, "a supernet is used only by --proxy supernet")
    path = Path(v).expanduser()
    if not (path.is_file() or (path / "supernet.pt").is_file()):
        raise fail(key, f"no trained supernet at {v} (a directory holding supernet.pt, or the file)")


def _target_only(algorithm: str) -> bool:
    """A searcher that proposes only networks under the target: it ranks them by accuracy (the hard reward)."""
    return ALGORITHMS.accepts(algorithm) and bool(ALGORITHMS.entry(algorithm).meta.get("target_only"))


def reward_name(config) -> str:
    """The reward a run uses: what it was given, else its algorithm's."""
    return config.reward or ("hard" if _target_only(config.algorithm) else "tunas")


def _one_of(registry) -> str:
    names = list(registry)
    return ", ".join(names[:-1]) + " or " + names[-1]


def _check_registered(registry):
    def check(config, key, fail) -> None:
        if not isinstance(config[key], str) or not registry.accepts(config[key]):
            raise fail(key, f"must be {_one_of(registry)}, got {config[key]!r}")
    return check


def _check_reward(config, key, fail) -> None:
    v = config[key]
    if v is None:
        return
    _check_registered(REWARDS)(config, key, fail)
    if _target_only(config.get("algorithm")) and v != "hard":
        raise fail(key, f"{config['algorithm']} proposes only networks under the target and ranks them by "
                        f"accuracy (the hard reward); {v!r} cannot take effect: leave the reward out, or choose "
                        f"another algorithm")


def _check_algorithm(config, key, fail) -> None:
    """tunas: TuNAS's joint search trains its own supernet with the controller (the supernet proxy)."""
    _check_registered(ALGORITHMS)(config, key, fail)
    if ALGORITHMS.entry(config[key]).meta.get("trains_supernet"):
        if config.get("proxy") not in (None, "supernet"):
            raise fail(key, f"tunas trains the supernet that scores its samples: it takes --proxy supernet, "
                            f"not {config['proxy']!r}")
        if config.get("supernet") is not None:
            raise fail(key, "tunas trains its supernet with the controller: it cannot reuse --supernet")


def _check_deploy(config, key, fail) -> None:
    v = config[key]
    if v is not None and (not isinstance(v, list) or any(d not in DEPLOY for d in v) or len(set(v)) != len(v)):
        raise fail(key, f"must be a list of distinct names from {', '.join(DEPLOY)} (or none), got {v!r}")


_CHECKS: dict[str, Callable[[dict, str, Callable], None]] = {
    "target_ms": _check_target,
    "space": _check_text(optional=False), "device": _check_text(optional=False),
    "proxy": _check_text(optional=True),
    "budget": _check_registered(BUDGETS),
    "seed": _check_seed,
    "algorithm": _check_algorithm,
    "reward": _check_reward,
    "reward_w": _check_reward_w, "samples": _check_count, "cpus": _check_count,
    "dataset": _check_text(optional=False), "data": _check_text(optional=True),
    "address": _check_text(optional=True), "trial_retries": _check_retries, "baselines": _check_baselines,
    "deploy": _check_deploy, "supernet": _check_supernet,
}
assert set(_CHECKS) == set(CONFIG_KEYS)


def given_flags(args) -> dict[str, Any]:
    """The settings given as flags on this command line (None: not given)."""
    return {key: getattr(args, key, None) for key in CONFIG_KEYS}


def new_run_config(args) -> RunConfig:
    """A new run: defaults <- --config file <- flags."""
    file_values = read_config_file(args.config, CONFIG_KEYS) if args.config else {}
    values, origins = layer(DEFAULTS, file_values, args.config, given_flags(args))
    values = {key: values[key] for key in [*file_values, *values]}  # the file's order: see validate_config
    if args.config and "target_ms" not in origins:  # missing from the file the user gave: name it
        origins["target_ms"] = (args.config, "target_ms")
    return _address_confirmed(validate_config(values, origins), origins)


def _address_confirmed(config: RunConfig, origins: dict) -> RunConfig:
    """A Ray cluster is joined only when the person running the command names it: a cluster runs what
    it is sent and the driver unpickles its replies, so an address in a file from elsewhere must not
    be enough."""
    source, _ = origins.get("address", (None, None))
    if config.address is not None and source is not None:
        raise UserError(f"names the Ray cluster {config.address!r}; a cluster from a file is joined only when the "
                        f"command line names it too: add --address {config.address}", source=source,
                        field="address")
    return config


def read_saved_config(run_dir: Path) -> RunConfig:
    """A run directory's config.yaml, checked."""
    path = run_dir / "config.yaml"
    if not path.exists():
        raise UserError("no config.yaml here: not a run directory to resume", source=str(run_dir))
    return validate_config(read_config_file(path, CONFIG_KEYS), file_origins(str(path), CONFIG_KEYS))


def saved_run_config(run_dir: Path, args) -> RunConfig:
    """A resumed run: its saved config.yaml; a flag may change only where and how it runs."""
    path = run_dir / "config.yaml"
    origins = file_origins(str(path), CONFIG_KEYS)
    saved = read_saved_config(run_dir).to_dict()
    for key, given in given_flags(args).items():
        if given is not None and key not in RESUME_MAY_CHANGE and given != saved[key]:
            raise UserError(f"{flag(key)} {given} differs from this run's saved {saved[key]!r}; "
                            f"drop the flag to resume, or start a new run", source=str(path))
    changed = {key: v for key, v in given_flags(args).items() if key in RESUME_MAY_CHANGE and v is not None}
    for key in changed:
        origins[key] = (None, flag(key))
    return _address_confirmed(validate_config({**saved, **changed}, origins), origins)
