"""Convert torch modules to TFLite (LiteRT) and time them with the LiteRT interpreter.

The converter, litert-torch, pulls jax and transformers, so it is the optional extra `tflite`
(`pip install 'nas-mobilenetv3[tflite]'`); the interpreter alone (ai-edge-litert) is light. Both are
imported only when a function here is called, never at import time.

Conversions run in a converter process of their own (nas.export.converter), so that the process
that times a model never loads the converter.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from nas.export.converter import in_converter_process
from nas.export.timing import Timing
from nas.export.verify import check_exported
from nas.runtime.errors import UserError
from nas.runtime.log import root_handlers_kept

log = logging.getLogger(__name__)

_first_interpreter = True
INSTALL_HINT = "pip install 'nas-mobilenetv3[tflite]' (or `make setup`, which installs it)"


def tflite_available() -> bool:
    """Whether both the converter and the interpreter are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))


def require_tflite(what: str = "TFLite export") -> None:
    if not tflite_available():
        raise UserError(f"{what} needs the optional extra 'tflite': {INSTALL_HINT}")


def runtime_version() -> str:
    """The interpreter's package and version, part of a LiteRT table's fingerprint."""
    try:
        return f"ai-edge-litert {version('ai-edge-litert')}"
    except PackageNotFoundError:
        return "ai-edge-litert (not installed)"


@contextlib.contextmanager
def _native_stderr_silenced():
    """fd 2 to /dev/null: the converter's native library prints absl/oneDNN banners on load, past
    Python's logging (a Python exception still propagates, and is reported after fd 2 is back)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (an embedded interpreter): leave it alone
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quiet_converter():
    # TensorFlow's C++ logging and torchao's probes write to stderr on import, and the converter's
    # progress lines to stdout (where --json's line must be last); keep commands readable, so that
    # an error is one line.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    for name in ("absl", "torchao", "litert_torch", "jax", "tensorflow"):  # before the import logs
        logging.getLogger(name).setLevel(logging.ERROR)
    if "litert_torch" in sys.modules:
        return sys.modules["litert_torch"]
    with warnings.catch_warnings(), _native_stderr_silenced(), root_handlers_kept():
        warnings.simplefilter("ignore")
        import litert_torch  # deferred: optional (the tflite extra), ~10 s to load
    return litert_torch


@in_converter_process(require_tflite)
def to_tflite(model: nn.Module, input_shape: Sequence[int], quant_config=None, *, channels_last: bool = True,
              keep_4d_output: bool = False) -> bytes:
    """TFLite flatbuffer of `model` in eval mode, traced on a zero input; `input_shape` is NCHW.

    With `channels_last` (the default) the file takes NHWC input, TFLite's own layout, as a phone app
    feeds it and as the host-litert tables time it: an NCHW input would cost a transpose that no
    deployed model has. `keep_4d_output` makes a 4-d output NHWC as well (a single op's feature
    map); a network's logits are 2-d either way. `quant_config` is litert-torch's QuantConfig for an
    int8 model whose graph nas.export.quantize already made channels-last (then pass False)."""
    require_tflite()
    litert_torch = _quiet_converter()
    model.eval()  # not `model = model.eval()`: a PT2E graph's eval() returns None
    shape = tuple(int(d) for d in input_shape)
    if channels_last:
        model, shape = nhwc_model(model, keep_4d_output), nhwc(shape)
    with warnings.catch_warnings(), torch.no_grad(), root_handlers_kept():
        warnings.simplefilter("ignore")
        converted = litert_torch.convert(model, (torch.zeros(*shape),), quant_config=quant_config)
    return bytes(converted.model_content())


def nhwc(shape: Sequence[int]) -> tuple[int, ...]:
    n, c, h, w = (int(d) for d in shape)
    return n, h, w, c


def nhwc_model(model: nn.Module, keep_4d_output: bool = False) -> nn.Module:
    """`model` taking NHWC input (and, with `keep_4d_output`, giving NHWC output)."""
    litert_torch = _quiet_converter()
    wrapped = litert_torch.to_channel_last_io(model.eval(), args=[0], outputs=[0] if keep_4d_output else [])
    wrapped.eval()  # the wrapper is a new module, in training mode until told
    return wrapped


def as_model_input(interp, x: np.ndarray) -> np.ndarray:
    """NCHW `x` in the layout the model takes: transposed to NHWC for a channels-last model."""
    shape = tuple(int(d) for d in interp.get_input_details()[0]["shape"])
    if x.ndim == 4 and shape != x.shape and shape == (x.shape[0], *x.shape[2:], x.shape[1]):
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


def make_interpreter(model: bytes, threads: int = 1):
    """A LiteRT interpreter with XNNPACK and an explicit thread count, tensors allocated."""
    require_tflite("the LiteRT interpreter")
    from ai_edge_litert.interpreter import Interpreter  # deferred: optional (the tflite extra)

    global _first_interpreter
    # The first one prints "INFO: Created TensorFlow Lite XNNPACK delegate" past Python's logging.
    with _native_stderr_silenced() if _first_interpreter else contextlib.nullcontext():
        interp = Interpreter(model_content=model, num_threads=threads)
        interp.allocate_tensors()
    _first_interpreter = False
    return interp


def run(interp, x: np.ndarray) -> np.ndarray:
    """One inference on `x` (its dtype must be the model's input dtype)."""
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def _quantized(detail) -> bool:
    return detail["dtype"] != np.float32 and detail["quantization"][0] != 0


def run_float(interp, x: np.ndarray) -> np.ndarray:
    """One inference on float32 NCHW `x`, float32 out: transposed for a channels-last model, a fully
    int8 model's input quantized with its own scale and zero point and its output dequantized."""
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = as_model_input(interp, np.ascontiguousarray(x, dtype=np.float32))
    if _quantized(inp):
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    y = run(interp, x)
    if _quantized(out):
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def tflite_predict(tflite: bytes, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """float32 NCHW -> logits with LiteRT (an int8 model's input quantized, output dequantized)."""
    interp = make_interpreter(tflite, threads)
    return lambda x: run_float(interp, x)


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
    """Largest |LiteRT - torch| on one random input, both in eval mode (an int8 model's output
    dequantized)."""
    x = np.random.default_rng(seed).standard_normal(input_shape).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    got = run_float(make_interpreter(tflite), x)
    return float(np.max(np.abs(got - expected)))


def check_tflite(model: nn.Module, tflite: bytes, input_shape: Sequence[int], not_written: str, *,
                 threads: int = 1, runs: int = 50, **check) -> dict:
    """nas.export.verify.check_exported for a TFLite model, timed with the LiteRT interpreter."""
    seed = check.get("seed", 0)
    return check_exported(model, tuple(input_shape), not_written, runtime="LiteRT",
                          diff=lambda: max_abs_diff(model, tflite, input_shape, seed),
                          predict=lambda: tflite_predict(tflite),
                          timer=lambda: time_interpreter(make_interpreter(tflite, threads), runs=runs),
                          threads=threads, **check)
