"""What a run is made of (device, space, data, proxy), resolved and so checked before any file is written."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.accuracy.proxy import make_proxy
from nas.accuracy.proxy_config import DataConfig
from nas.budgets import get_budget
from nas.pipeline.run_config import RunConfig
from nas.runtime.errors import UserError
from nas.runtime.session import limit_cpus
from nas.supernet.supernet_run import read_checkpoint

if TYPE_CHECKING:  # annotations only
    from nas.accuracy.proxy_interface import Proxy
    from nas.core.space import SearchSpace
    from nas.latency.predict import Device

FAMILY_SPACES = {"large": "mobilenetv3_large", "small": "mobilenetv3_small"}


def pick_space(space: str, target_ms: float, device: Device) -> tuple[SearchSpace, str]:
    """`auto`: the family whose seed network's latency on this device is nearest the target."""
    from nas.core.space import load_space  # deferred: loads numpy

    if space != "auto":
        return load_space(space), "given"
    ratios = {}
    for family, name in FAMILY_SPACES.items():
        candidate = load_space(name)
        ms = device.predict(candidate.seed_spec()).ms
        ratios[family] = (abs(math.log(target_ms / ms)), ms, candidate)
    family = min(ratios, key=lambda f: ratios[f][0])
    seeds = ", ".join(f"{f} seed {v[1]:.1f} ms" for f, v in ratios.items())
    return ratios[family][2], f"auto: {seeds}"


@dataclass
class Prepared:
    """A run's inputs, resolved and checked: what every stage is given."""

    device: Device
    space: SearchSpace
    why: str  # how the space was chosen
    data: DataConfig
    proxy: Proxy
    proxy_name: str


def prepare(config: RunConfig) -> Prepared:
    """Resolve device, space, data and proxy; a bad one is a one-line error naming where it came from."""
    from nas.accuracy.datasets import open_source  # deferred: loads torch
    from nas.latency.devices import get_device  # deferred: loads torch
    from nas.latency.ops import space_ops  # deferred: loads torch

    at = config.located
    budget = get_budget(config.budget)
    device = at("device", lambda: get_device(config.device))
    space, why = at("space", lambda: pick_space(config.space, config.target_ms, device))
    if getattr(device, "measure_missing", True) is None:  # a table from elsewhere must cover the space
        at("device", lambda: device.ensure_ops(space_ops(space)))
    at("device", lambda: device.predict(space.seed_spec()))  # e.g. a table without its calibration
    data = at("dataset", lambda: DataConfig(dataset=config.dataset, path=config.data))
    at("data", lambda: open_source(data.dataset, data.path))
    proxy_name = config.proxy or ("supernet" if config.algorithm == "tunas" else budget.search.proxy)
    proxy = at("proxy", lambda: make_proxy(proxy_name, budget.name, data=data, seed=config.seed))
    if proxy.predicts_accuracy:  # a model of one space: refuse another before any file
        at("proxy", lambda: proxy.evaluate(space.seed_spec()))
    if config.supernet:  # a supernet to reuse: it must load and be of this run's space
        at("supernet", lambda: check_supernet(config.supernet, space))
    return Prepared(device, space, why, data, proxy, proxy_name)


def check_supernet(path: str, space) -> None:
    state = read_checkpoint(path)
    trained_on = state["identity"]["space"]
    if trained_on != space.name:
        raise UserError(f"the supernet is of space {trained_on}, this run searches {space.name}", source=path)


def limit_local_cpus(config: RunConfig) -> None:
    """--cpus N: the whole local run (torch, ONNX Runtime, a local Ray and its workers) on N CPUs."""
    if config.cpus is not None and config.address is None:
        limit_cpus(config.cpus)
