"""Accuracy proxies: data sets, short proxy training, zero-cost scores, Ray Tune trials, fidelity audit.

The search calls one thing::

    proxy = make_proxy(DEFAULT_PROXY, budget="default", data=DataConfig(), seed=0)   # "params"
    result = proxy.evaluate(spec)   # {"accuracy", "score", "seconds", "failed", ...}

Names resolve lazily (PEP 562), so that `python -m nas.proxies --help` and flag errors answer
before torch is imported; Ray is imported only by `nas.accuracy.tune`.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "nas.accuracy.config": ("DataConfig", "ProxyConfig", "TrainConfig"),
    "nas.accuracy.data": ("ProxyData", "load_data"),
    "nas.accuracy.proxy": ("DEFAULT_PROXY", "Proxy", "TrainingProxy", "ZeroCostScorer", "make_proxy", "proxy_names"),
    "nas.accuracy.cascade": ("CascadeProxy",),
    "nas.accuracy.train": ("TrainResult", "Trainer", "adapt_spec", "train_spec"),
    "nas.accuracy.zero_cost": ("ZERO_COST", "zero_cost_score"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'nas.accuracy' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
