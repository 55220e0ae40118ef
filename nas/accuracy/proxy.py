"""One interface for every accuracy proxy: `make_proxy(name, budget) -> Proxy`, `proxy.evaluate(spec) -> dict`.

Every name is registered in `PROXIES` (nas.runtime.registry) by the module that implements it;
a user's own proxy registers there too. Built in: the zero-cost scores of `ZERO_COST` (cheap: no
training); the training proxies "train" (the budget's proxy recipe), "train-<E>ep" / "train-<S>steps" (that recipe, another length) and
"reference" (the budget's long reference training, as in the audit); "supernet", a network's
top-1 with weights inherited from one trained weight-sharing supernet (`nas.supernet`); and cascades
"<zero-cost>><training>", e.g. "zen>train", which train only what the zero-cost score lets
through (`nas.accuracy.cascade`); and "ofa-imagenet" / "accel-imagenet", ImageNet top-1 predicted by
others' models for their own spaces (`nas.groundtruth.imagenet_proxy`).

`evaluate` returns a dict with at least `proxy`, `score` (higher is better; what a ranking
uses), `accuracy` (validation top-1 in [0, 1] for training proxies, None for zero-cost ones),
`seconds` and `failed` (a diverging network: accuracy 0, score 0 for training proxies and None
for zero-cost ones, `reason` says why).

Torch-free on import, so that the names register (and a command lists them) before torch loads:
the proxies import it when they load their data or train.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from nas.accuracy.proxy_interface import Proxy, ProxyContext
from nas.accuracy.proxy_config import DataConfig, ProxyConfig, TrainConfig, with_length
from nas.accuracy.zero_cost_table import ZERO_COST, ZeroCostProxy
from nas.core.spec import ArchSpec
from nas.runtime.errors import UserError
from nas.runtime.files import save_state
from nas.runtime.registry import BUDGETS, PROXIES
from nas.runtime.session import select_device, set_threads

if TYPE_CHECKING:  # the budgets sit above the proxies: a name is looked up in BUDGETS
    from nas.accuracy.proxy_data import ProxyData
    from nas.budgets import AccuracyBudget, Budget

_LENGTH = re.compile(r"train-(\d+)(ep|steps)")


class TrainingProxy(Proxy):
    """Short training on the proxy task; the score is the validation top-1."""

    cheap = False

    def __init__(self, name: str, config: ProxyConfig):
        self.name, self.config = name, config

    def fingerprint(self) -> str:
        return self.config.fingerprint()

    def data(self) -> ProxyData:
        from nas.accuracy.proxy_data import load_data  # deferred: torch (see the module's docstring)

        c = self.config
        return load_data(c.data, c.train.train_images, c.train.val_images, select_device(c.device))

    def evaluate(self, spec: ArchSpec, weights_out: str | None = None) -> dict[str, Any]:
        """The training's result; with `weights_out`, the trained state_dict is saved there (for the
        spec as trained: adapt_spec's classes, resolution and stem stride)."""
        from nas.accuracy.short_training import Trainer  # deferred: torch (see the module's docstring)

        c = self.config
        set_threads(c.threads)
        trainer = Trainer(spec, self.data(), c.train, seed=c.seed, stem_stride=c.data.stem_stride)
        result = trainer.run()
        if weights_out and not result.failed:
            save_state({k: v.cpu().contiguous() for k, v in trainer.model.state_dict().items()}, weights_out)
        out = result.as_dict()
        out.update(proxy=self.name, score=result.accuracy, arch_hash=spec.content_hash())
        return out


class ZeroCostScorer(Proxy):
    """A zero-cost score of the spec as the proxy task would train it."""

    cheap = True

    def __init__(self, proxy: ZeroCostProxy, data: DataConfig, batch: int, seed: int = 0,
                 device: str = "auto", threads: int | None = None):
        self.name, self.proxy = proxy.name, proxy
        self.data_config, self.batch, self.seed, self.device, self.threads = data, batch, seed, device, threads

    def fingerprint(self) -> str:
        blob = json.dumps({"proxy": self.name, "data": asdict(self.data_config), "batch": self.batch,
                           "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def data(self) -> ProxyData:
        from nas.accuracy.proxy_data import load_data  # deferred: torch (see the module's docstring)

        return load_data(self.data_config, self.batch, 1, select_device(self.device))

    def evaluate(self, spec: ArchSpec) -> dict[str, Any]:
        from nas.accuracy.short_training import adapt_spec  # deferred: torch (see the module's docstring)

        set_threads(self.threads)
        data = self.data()
        start = time.perf_counter()
        adapted = adapt_spec(spec, data.num_classes, data.resolution, self.data_config.stem_stride)
        images, labels = data.minibatch(self.batch, self.seed)
        score = self.proxy.fn(adapted, images, labels, self.seed)
        seconds = time.perf_counter() - start
        failed = not math.isfinite(score)
        return {"proxy": self.name, "score": None if failed else score, "accuracy": None, "seconds": seconds,
                "failed": failed, "reason": f"non-finite score {score}" if failed else None,
                "arch_hash": spec.content_hash()}


def training_config(name: str, budget: AccuracyBudget) -> TrainConfig:
    """The training recipe a training-proxy name stands for under a budget."""
    if name == "train":
        return budget.proxy
    if name == "reference":
        return budget.reference
    m = _LENGTH.fullmatch(name)
    if not m or int(m.group(1)) < 1:
        raise UserError(f"unknown proxy {name!r} (one of {', '.join(proxy_names())})", setting="proxy")
    n = int(m.group(1))
    return with_length(budget.proxy, epochs=n) if m.group(2) == "ep" else with_length(budget.proxy, steps=n)


def make_proxy(name: str, budget: str | Budget | AccuracyBudget = "default", data: DataConfig | None = None,
               seed: int = 0, device: str = "auto", threads: int | None = None,
               train: TrainConfig | None = None) -> Proxy:
    """The named proxy (from `PROXIES`) under a budget (its accuracy part); `train` replaces the
    budget's recipe for a training proxy. "A>B" is a cascade: B scores only what A lets through."""
    budget = BUDGETS.lookup(budget) if isinstance(budget, str) else budget
    context = ProxyContext(getattr(budget, "accuracy", budget), data or DataConfig(), seed, device, threads, train)
    if isinstance(name, str) and ">" in name:
        from nas.accuracy.cascade import CascadeProxy  # deferred: numpy (~0.2 s), for a cascade only

        first, _, second = name.partition(">")
        if _kind(first) != "zero-cost" or _kind(second) != "training":
            raise UserError(f"a cascade is ZERO_COST>TRAINING (e.g. zen>train), got {name!r}", setting="proxy")
        return CascadeProxy(make_proxy(first, context.budget, data, seed, device, threads),
                            make_proxy(second, context.budget, data, seed, device, threads, train))
    return PROXIES.lookup(name)(name, context)


def _kind(name: str) -> str | None:
    return PROXIES.entry(name).meta.get("kind") if PROXIES.accepts(name) else None


def proxy_names() -> list[str]:
    return [*PROXIES, "<zero-cost>><training>"]


def _zero_cost(name: str, c: ProxyContext) -> Proxy:
    return ZeroCostScorer(ZERO_COST[name], c.data, c.budget.zero_cost_batch, c.seed, c.device, c.threads)


def _training(name: str, c: ProxyContext) -> Proxy:
    config = c.train or training_config(name, c.budget)
    return TrainingProxy(name, ProxyConfig(data=c.data, train=config, seed=c.seed, device=c.device, threads=c.threads))


for _score in ZERO_COST.values():
    PROXIES.register(_score.name, _zero_cost, help=_score.summary, kind="zero-cost")
for _name, _pattern, _help in (
        ("train", None, "the budget's short training on the proxy task; score: its top-1"),
        ("train-<E>ep", r"train-[1-9]\d*ep", "that training, E epochs long"),
        ("train-<S>steps", r"train-[1-9]\d*steps", "that training, S steps long"),
        ("reference", None, "the budget's long reference training (as in the audit)")):
    PROXIES.register(_name, _training, pattern=_pattern, help=_help, kind="training")


def audit_proxies(budget: AccuracyBudget, data: DataConfig, seed: int = 0, device: str = "auto",
                  threads: int | None = None) -> list[Proxy]:
    """Every proxy the fidelity audit measures: the short trainings and each zero-cost score."""
    short = [TrainingProxy(f"train-{e}ep", ProxyConfig(data, replace(budget.proxy, epochs=e, steps=None),
                                                       seed, device, threads))
             for e in budget.audit_epochs]
    return [*short, *(make_proxy(n, budget, data, seed, device, threads) for n in ZERO_COST)]
