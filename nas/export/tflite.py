"""Convert torch modules to TFLite (LiteRT) and time them with the LiteRT interpreter.

The converter, litert-torch, pulls jax and transformers, so it is the optional extra `tflite`
(`pip install 'nas-mobilenetv3[tflite]'`); the interpreter alone (ai-edge-litert) is light. Both are
imported only when a function here is called, never at import time.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import time
import warnings
from typing import Sequence

import numpy as np
import torch
from torch import nn

from nas.latency.measure import Timing
from nas.runtime.errors import UserError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'nas-mobilenetv3[tflite]' (or `make setup`, which installs it)"


def tflite_available() -> bool:
    """Whether both the converter and the interpreter are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))


def require_tflite(what: str = "TFLite export") -> None:
    if not tflite_available():
        raise UserError(f"{what} needs the optional extra 'tflite': {INSTALL_HINT}")


def runtime_version() -> str:
    """The interpreter's package and version, part of a LiteRT table's fingerprint."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return f"ai-edge-litert {version('ai-edge-litert')}"
    except PackageNotFoundError:
        return "ai-edge-litert (not installed)"


def _quiet_converter():
    # TensorFlow's C++ logging and torchao's probes write to stderr on import; keep commands readable.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import litert_torch
    for name in ("absl", "torchao", "litert_torch", "jax", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return litert_torch


def to_tflite(model: nn.Module, input_shape: Sequence[int], quant_config=None) -> bytes:
    """TFLite flatbuffer of `model` in eval mode, traced on a zero input of `input_shape` (NCHW).

    `quant_config` is litert-torch's QuantConfig for an int8 model (see nas.export.quantize)."""
    require_tflite()
    litert_torch = _quiet_converter()
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        converted = litert_torch.convert(model, (torch.zeros(*input_shape),), quant_config=quant_config)
    return bytes(converted.model_content())


def make_interpreter(model: bytes, threads: int = 1):
    """A LiteRT interpreter with XNNPACK and an explicit thread count, tensors allocated."""
    require_tflite("the LiteRT interpreter")
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model, num_threads=threads)
    interp.allocate_tensors()
    return interp


def run(interp, x: np.ndarray) -> np.ndarray:
    """One inference on `x` (its dtype must be the model's input dtype)."""
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def random_input(interp, seed: int = 0) -> np.ndarray:
    inp = interp.get_input_details()[0]
    x = np.random.default_rng(seed).standard_normal(inp["shape"]).astype(np.float32)
    if inp["dtype"] != np.float32:  # a fully int8 model: quantize with the input's own parameters
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    return x


def time_interpreter(interp, runs: int = 50, warmup: int = 10, seed: int = 0) -> Timing:
    """Median / p10 / p90 of `runs` timed invocations after `warmup` untimed ones."""
    x = random_input(interp, seed)
    inp = interp.get_input_details()[0]["index"]
    interp.set_tensor(inp, x)
    for _ in range(warmup):
        interp.invoke()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        interp.invoke()
        samples.append((time.perf_counter() - start) * 1e3)
    return Timing.of(samples)


def max_abs_diff(model: nn.Module, tflite: bytes, input_shape: Sequence[int], seed: int = 0) -> float:
    """Largest |LiteRT - torch| on one random input, both in eval mode (float models)."""
    x = np.random.default_rng(seed).standard_normal(input_shape).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    got = run(make_interpreter(tflite), x)
    return float(np.max(np.abs(got - expected)))
