"""Hardware-aware neural architecture search that reproduces the MobileNetV3 search.

The Python API (docs/python.md); names load on first use, so `import nas` is cheap::

    import nas

    result = nas.search(target_ms=15.8, space="mobilenetv3_small", budget="smoke")
    print(result.final_spec, result.predicted_ms, result.accuracy)

    nas.predict_latency("mobilenetv3_small", device="pixel1").ms
    nas.PROXIES.register("my-score", my_factory)     # then proxy="my-score" anywhere
"""
from __future__ import annotations

import types

from nas.runtime.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "nas.api": ("Accuracy", "Pipeline", "SearchResult", "export", "netadapt", "predict_latency", "run_config",
                "score", "train"),
    "nas.core.space": ("SearchSpace", "load_space"),
    "nas.core.spec": ("ArchSpec", "save_spec", "spec_from_string"),
    "nas.core.spec_file": ("load_spec",),
    "nas.core.model": ("build_model",),
    "nas.latency.devices": ("get_device",),
    "nas.latency.predict": ("Device", "Prediction"),
    "nas.accuracy.proxy_interface": ("Proxy", "ProxyContext"),
    "nas.accuracy.proxy": ("make_proxy",),
    "nas.runtime.errors": ("UserError",),
    "nas.runtime.registry": ("ALGORITHMS", "BUDGETS", "DEVICES", "PROXIES", "REWARDS", "SPACES", "Registry"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted([*__all__, "search"])


class _SearchPackage(types.ModuleType):
    """`nas.search` is both the search stage's package and the call that runs the whole pipeline:
    importing a submodule binds the package to `nas.search`, so the package itself is callable."""

    def __call__(self, target_ms: float, **settings):
        from nas.api import search  # deferred: `import nas` stays cheap (names load on first use)

        return search(target_ms, **settings)


from nas import search as _search  # noqa: E402 - the package, once `nas` exists

_search.__class__ = _SearchPackage
