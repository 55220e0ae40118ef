"""The runtimes a host table is measured with: how an op or a network becomes model bytes, how a
ready-to-run session is made from them, and what the timings depend on (the fingerprint).

`onnxruntime` (the `host` device) and `litert` (`host-litert`: the LiteRT interpreter, XNNPACK), each
in fp32 or int8. The timing loop itself (nas.latency.build.time_interleaved) is the same for all.

Conversions that are slow (TFLite: ~1.5 s an op; int8: a calibration pass) are cached on disk under
the user cache, keyed by what was converted, the converter's version, the precision and the seed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from nas.core.model import build_model
from nas.core.spec import ArchSpec
from nas.export.quantize import quantize_onnx, random_calibration, tflite_int8
from nas.latency.ops import Op, build_op_module
from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write_bytes
from nas.runtime.paths import cache_dir

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8")
RUNTIMES = {"host": "onnxruntime", "host-litert": "litert"}  # device base name -> runtime


def _version(package: str) -> str:
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return f"{package} (not installed)"


def parse_host_name(name: str) -> tuple[str, str] | None:
    """('host-litert', 'int8') for 'host-litert:int8'; None for a name that is no host device."""
    base, _, precision = name.partition(":")
    if base not in RUNTIMES:
        return None
    precision = precision or "fp32"
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r} in device {name!r} (choose: {', '.join(PRECISIONS)})")
    return base, precision


def host_name(base: str, precision: str) -> str:
    """The device's name as get_device reads it: fp32 is the plain name."""
    return base if precision == "fp32" else f"{base}:{precision}"


class Backend(ABC):
    """One runtime at one precision. `stats` adds up what conversions and timing cost."""

    runtime = ""
    suffix = ""
    cache_models = True

    def __init__(self, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision {precision!r} (choose: {', '.join(PRECISIONS)})", setting="precision")
        self.precision = precision
        self.stats = {"convert_s": 0.0, "time_s": 0.0, "converted": 0, "cached": 0}

    @property
    def device_name(self) -> str:
        base = next(b for b, r in RUNTIMES.items() if r == self.runtime)
        return host_name(base, self.precision)

    # ---- what a subclass says --------------------------------------------------------------------
    @abstractmethod
    def fingerprint(self, machine: dict) -> dict:
        """What a timing depends on, from the ONNX Runtime host's fingerprint `machine` (cpu, cores,
        runtime, provider, threads): a table measured otherwise must not be used silently."""

    @abstractmethod
    def converter(self) -> str:
        """What the model bytes depend on, beyond the op and the precision."""

    @abstractmethod
    def convert(self, module: nn.Module, input_shape: Sequence[int], keep_4d_output: bool) -> bytes:
        """The model file's bytes for `module` at NCHW `input_shape`."""

    @abstractmethod
    def runner(self, model: bytes, threads: int, seed: int = 0) -> Callable[[], object]:
        """A zero-argument call that runs one inference on a fixed random input."""

    # ---- shared ----------------------------------------------------------------------------------
    def op_model(self, op: Op, seed: int = 0) -> bytes:
        def make():
            torch.manual_seed(seed)
            module = _randomized(build_op_module(op), seed)
            return self.convert(module, op.input_shape, keep_4d_output=not op.key.startswith("head-"))
        return self._cached(("op", op.key, seed), make)

    def spec_model(self, spec: ArchSpec, seed: int = 0, cache: bool = True) -> bytes:
        def make():
            torch.manual_seed(seed)
            module = _randomized(build_model(spec), seed)
            return self.convert(module, (1, 3, spec.resolution, spec.resolution), keep_4d_output=False)
        return self._cached(("network", spec.to_string(), seed), make, cache)

    def cache_path(self, what: tuple) -> Path:
        key = json.dumps([*what, self.converter(), self.precision], sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:20]
        return cache_dir() / "models" / f"{self.runtime}-{self.precision}" / f"{what[0]}-{digest}{self.suffix}"

    def _cached(self, what: tuple, make: Callable[[], bytes], cache: bool = True) -> bytes:
        cache = cache and self.cache_models
        path = self.cache_path(what) if cache else None
        if path is not None and path.is_file():
            try:
                data = path.read_bytes()
                if data:
                    self.stats["cached"] += 1
                    return data
            except OSError:  # unreadable: convert again
                pass
        start = time.perf_counter()
        data = make()
        self.stats["convert_s"] += time.perf_counter() - start
        self.stats["converted"] += 1
        if path is not None:
            try:
                atomic_write_bytes(path, data)
            except OSError as err:  # a read-only cache costs time, not the build
                log.debug("model cache not written (%s): %s", path, err)
        return data

    def report(self) -> dict:
        """The build's cost as the JSON shows it."""
        s = self.stats
        return {"convert_s": round(s["convert_s"], 3), "time_s": round(s["time_s"], 3),
                "models_converted": s["converted"], "models_cached": s["cached"]}


def _randomized(module: nn.Module, seed: int) -> nn.Module:
    from nas.export.onnx import randomize_for_check  # deferred: loads onnxruntime
    return randomize_for_check(module, seed)


class OnnxBackend(Backend):
    """ONNX Runtime, CPUExecutionProvider; int8 is ONNX Runtime's static QDQ quantization."""

    runtime = "onnxruntime"
    suffix = ".onnx"

    def __init__(self, precision: str = "fp32"):
        super().__init__(precision)
        self.cache_models = precision != "fp32"  # an fp32 export takes ~50 ms: not worth a file

    def fingerprint(self, machine: dict) -> dict:
        # fp32 keeps the fingerprint (and so the cache file) that host tables always had
        return dict(machine) if self.precision == "fp32" else {**machine, "precision": self.precision}

    def converter(self) -> str:
        from nas.export.onnx import OPSET  # deferred: loads onnxruntime
        return f"{_version('torch')} opset {OPSET}; {_version('onnxruntime')}"

    def convert(self, module, input_shape, keep_4d_output):
        from nas.export.onnx import export_onnx  # deferred: loads onnxruntime
        onnx = export_onnx(module, tuple(input_shape))
        if self.precision == "int8":
            onnx = quantize_onnx(onnx, random_calibration(input_shape))
        return onnx

    def runner(self, model, threads, seed=0):
        from nas.export.timing import make_session, random_input  # deferred: loads onnxruntime
        session = make_session(model, threads)
        feeds = random_input(session, seed)
        return lambda: session.run(None, feeds)


class LiteRTBackend(Backend):
    """The LiteRT interpreter with XNNPACK; models converted by litert-torch with channels-last input
    (and output, for ops that end in a feature map), so an op carries no layout transposes that the
    whole network would not have."""

    runtime = "litert"
    suffix = ".tflite"

    def __init__(self, precision: str = "fp32"):
        from nas.export.tflite import require_tflite  # deferred: loads onnxruntime
        require_tflite("the host-litert device")
        super().__init__(precision)

    def fingerprint(self, machine: dict) -> dict:
        from nas.export.tflite import runtime_version  # deferred: loads onnxruntime
        return {**machine, "runtime": runtime_version(), "provider": "XNNPACK", "converter": self.converter(),
                "precision": self.precision}

    def converter(self) -> str:
        return _version("litert-torch")

    def convert(self, module, input_shape, keep_4d_output):
        # channels-last (as every exported .tflite): an op carries no layout transposes that the
        # whole network would not have
        if self.precision == "int8":
            return tflite_int8(module, input_shape, random_calibration(input_shape), keep_4d_output=keep_4d_output)
        from nas.export.tflite import to_tflite  # deferred: loads onnxruntime
        return to_tflite(module, input_shape, keep_4d_output=keep_4d_output)

    def runner(self, model, threads, seed=0):
        from nas.export.tflite import make_interpreter, random_input  # deferred: loads onnxruntime
        interp = make_interpreter(model, threads)
        interp.set_tensor(interp.get_input_details()[0]["index"], random_input(interp, seed))
        return interp.invoke


def make_backend(runtime: str = "onnxruntime", precision: str = "fp32") -> Backend:
    if runtime in RUNTIMES:
        runtime = RUNTIMES[runtime]
    classes = {"onnxruntime": OnnxBackend, "litert": LiteRTBackend}
    if runtime not in classes:
        raise UserError(f"unknown runtime {runtime!r} (choose: {', '.join(classes)})")
    return classes[runtime](precision)
