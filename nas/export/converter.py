"""One converter process for TFLite conversions, so that no process that times a model loads the converter.

In a process that had imported litert-torch (jax, TensorFlow's runtime), the LiteRT interpreter ran
about 14% faster than in one that had not (median of 5 interleaved pairs of processes), and a
deployed app never loads the converter: host-litert's validate, which converted its networks before
timing them, read 12% fast (mean error +12%; with the conversions done elsewhere, -0.5%). Light on
purpose: no torch import here.
"""
from __future__ import annotations

import atexit
import functools
import multiprocessing
import os
from typing import Callable

_pool = None
_in_converter = False  # true in the converter process itself
IN_PROCESS_ENV = "NAS_CONVERT_IN_PROCESS"  # 1: convert here (debugging; timings after it read fast)


def _converter_init() -> None:
    global _in_converter
    _in_converter = True


def _shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None


def in_converter_process(require: Callable[[], None]):
    """Decorator: run the function (a module-level converter returning bytes; arguments picklable)
    in the one converter process, spawned on first use (~10 s of imports, once per process), after
    `require()` here (it raises when the converter is not installed, before any process starts).
    It runs here instead inside the converter process, in a daemonic worker (which may not start
    children and times nothing), or with NAS_CONVERT_IN_PROCESS=1."""
    def decorate(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            global _pool
            if _in_converter or multiprocessing.current_process().daemon or os.environ.get(IN_PROCESS_ENV) == "1":
                return fn(*args, **kwargs)
            # deferred: multiprocessing (~50 ms), for a conversion only
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool  # deferred: as above

            require()
            if _pool is None:
                _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_converter_init)
                atexit.register(_shutdown)  # before interpreter teardown: else its manager thread complains at exit
            try:
                return _pool.submit(call, *args, **kwargs).result()
            except BrokenProcessPool:
                _pool = None
                raise RuntimeError("the TFLite converter process died (out of memory?)") from None
        return call
    return decorate
