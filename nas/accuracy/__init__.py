"""Accuracy proxies: data sets, short proxy training, zero-cost scores, Ray Tune trials (their audits: nas.audit).

The search calls one thing::

    proxy = make_proxy("params", budget="default", data=DataConfig(), seed=0)   # any name in PROXIES
    result = proxy.evaluate(spec)   # {"accuracy", "score", "seconds", "failed", ...}

Names resolve lazily (PEP 562), so that `python -m nas.proxies --help` and flag errors answer
before torch is imported; Ray is imported only by `nas.accuracy.tune_trials`.
"""
from __future__ import annotations

from nas.runtime.lazy import lazy_exports

_EXPORTS = {
    "nas.accuracy.proxy_config": ("DataConfig", "ProxyConfig", "TrainConfig"),
    "nas.accuracy.proxy_data": ("ProxyData", "load_data"),
    "nas.accuracy.proxy_interface": ("Proxy", "ProxyContext"),
    "nas.accuracy.proxy": ("TrainingProxy", "ZeroCostScorer", "make_proxy", "proxy_names"),
    "nas.accuracy.cascade": ("CascadeProxy",),
    "nas.accuracy.short_training": ("TrainResult", "Trainer", "adapt_spec", "train_spec"),
    "nas.accuracy.zero_cost_table": ("ZERO_COST", "zero_cost_score"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
