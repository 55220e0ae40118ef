"""Post-training static int8 quantization of exported networks, and its accuracy check.

ONNX: ONNX Runtime's QDQ quantizer (per-channel int8 weights, int8 activations, min-max
calibration) on a few batches of calibration input. TFLite: litert-torch's PT2E quantizer
(per-channel symmetric int8 weights, int8 activations calibrated with histogram observers), a
fully int8 model (int8 input and output). Calibration input is what the network will see:
proxy-task images for a trained network, random normal input for an op or network timed with random
weights (its latency does not depend on the values).
"""
from __future__ import annotations

import copy
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from nas.export.converter import in_converter_process
from nas.runtime.log import root_handlers_kept

if TYPE_CHECKING:  # torch loads only when a function below is called
    from torch import nn

    from nas.accuracy.proxy_data import ProxyData


def random_calibration(input_shape: Sequence[int], batches: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Calibration input for a network whose weights are random (latency tables, tests)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(input_shape)).astype(np.float32) for _ in range(batches)]


def _inline_constant_identities(onnx_bytes: bytes) -> bytes:
    """The exporter shares equal constants (all-zero folded BN biases, say) through Identity nodes;
    the quantizer wants every Conv bias to be an initializer, so each such Identity becomes one."""
    import onnx  # deferred: onnx takes ~1.5 s to load

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    shared = [n for n in graph.node if n.op_type == "Identity" and n.input[0] in inits]
    if not shared:
        return onnx_bytes
    for node in shared:
        copy = onnx.TensorProto()
        copy.CopyFrom(inits[node.input[0]])
        copy.name = node.output[0]
        graph.initializer.append(copy)
        graph.node.remove(node)
    return model.SerializeToString()


def quantize_onnx(onnx_bytes: bytes, calibration: Iterable[np.ndarray], per_channel: bool = True) -> bytes:
    """int8 QDQ ONNX of a float model whose one input is named `input` (as nas.export.onnx writes)."""
    with root_handlers_kept():  # its import calls logging.basicConfig
        # deferred: onnxruntime.quantization takes ~1.5 s to load
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                              QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self, batches):
            self._it = iter([{"input": np.ascontiguousarray(b, dtype=np.float32)} for b in batches])

        def get_next(self):
            return next(self._it, None)

    class Advice(logging.Filter):  # its "consider pre-processing" advice, logged twice per call on the root logger
        def filter(self, record):
            return "pre-processing" not in record.getMessage()

    # The quantizer works on files (and writes its calibration scratch beside them): one private dir.
    with tempfile.TemporaryDirectory(prefix="nas-int8-") as tmp:
        src, dst = Path(tmp, "float.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(_inline_constant_identities(onnx_bytes))
        cwd = os.getcwd()
        os.chdir(tmp)  # the min-max calibrater writes augmented_model.onnx into the working directory
        advice = Advice()
        logging.getLogger().addFilter(advice)
        try:
            with root_handlers_kept():  # it logs with logging.warning, which adds one too
                quantize_static(str(src), str(dst), Reader(calibration), quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                per_channel=per_channel, calibrate_method=CalibrationMethod.MinMax)
        finally:
            os.chdir(cwd)
            logging.getLogger().removeFilter(advice)
        return dst.read_bytes()


def _rows(calibration: Iterable[np.ndarray]) -> list[np.ndarray]:
    """Calibration batches as batch-1 float32 arrays: the exported graphs have a fixed batch of 1."""
    rows = [np.ascontiguousarray(r[None], dtype=np.float32) for b in calibration for r in np.asarray(b)]
    if not rows:
        raise ValueError("int8 calibration needs at least one input")
    return rows


def _require_converter() -> None:
    from nas.export.tflite import require_tflite  # deferred: loads torch

    require_tflite()


@in_converter_process(_require_converter)
def tflite_int8(model: "nn.Module", input_shape: Sequence[int], calibration: Iterable[np.ndarray], *,
                channels_last: bool = True, keep_4d_output: bool = False) -> bytes:
    """Static int8 TFLite of `model` (eval mode): activation ranges observed on `calibration`
    (float32 NCHW arrays of any batch size), then converted by litert-torch. `input_shape` is NCHW;
    `channels_last` and `keep_4d_output` as nas.export.tflite.to_tflite."""
    import torch  # deferred: torch takes ~2 s to load

    from nas.export.tflite import _quiet_converter, nhwc, nhwc_model, require_tflite, to_tflite  # deferred: loads torch

    require_tflite("int8 TFLite export")
    _quiet_converter()
    from litert_torch.quantize import pt2e_quantizer  # deferred: optional (the tflite extra), ~10 s to load
    from litert_torch.quantize.quant_config import QuantConfig  # deferred: as above
    from torchao.quantization.pt2e import allow_exported_model_train_eval, quantize_pt2e  # deferred: as above

    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    shape = tuple(int(d) for d in input_shape)
    rows = _rows(calibration)
    model.eval()
    if channels_last:
        model, rows = nhwc_model(model, keep_4d_output), [np.ascontiguousarray(r.transpose(0, 2, 3, 1)) for r in rows]
        shape = nhwc(shape)
    with torch.no_grad(), root_handlers_kept():
        graph = torch.export.export(model, (torch.zeros(shape),)).module()
        prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
        for x in rows:
            prepared(torch.from_numpy(x).reshape(shape))
        converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    allow_exported_model_train_eval(converted)  # to_tflite calls eval(), which a bare exported graph refuses
    converted.training = False  # exported from an eval model; litert-torch warns about a module in training mode
    return to_tflite(converted, shape, quant_config=QuantConfig(pt2e_quantizer=quantizer), channels_last=False)


def proxy_calibration(data: "ProxyData", images: int = 256) -> list[np.ndarray]:
    """The first `images` training images of `data`, normalised as the network sees them, one per array.

    Training images, so that an accuracy check on the validation images never calibrates on them."""
    return [np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)
            for x, _ in data.batches("train", 1, limit=images)]


def int8_models(model: "nn.Module", data: "ProxyData", calibration_images: int = 256) -> dict[str, bytes]:
    """`model`'s int8 ONNX ("onnx") and, with the 'tflite' extra, int8 TFLite ("tflite"), calibrated
    on the first `calibration_images` training images of `data` (the slow half of int8_check, which
    a caller may run elsewhere beforehand)."""
    from nas.export.onnx import export_onnx  # deferred: loads torch
    from nas.export.tflite import tflite_available  # deferred: loads torch

    model = _cpu_copy(model)
    shape = (1, 3, data.resolution, data.resolution)
    calibration = proxy_calibration(data, calibration_images)
    models = {"onnx": quantize_onnx(export_onnx(model, shape), calibration)}
    if tflite_available():
        models["tflite"] = tflite_int8(model, shape, calibration)
    return models


def _cpu_copy(model: "nn.Module") -> "nn.Module":
    import torch  # deferred: torch takes ~2 s to load

    return copy.deepcopy(model).cpu().eval().to(memory_format=torch.contiguous_format)


def int8_check(model: "nn.Module", data: "ProxyData", calibration_images: int = 256, threads: int = 1,
               runs: int = 50, time_it: bool = True, models: dict[str, bytes] | None = None,
               val_images: int | None = None) -> dict:
    """fp32 vs int8 on the validation images of `data`: top-1 and latency, ONNX Runtime and LiteRT.

    `model` is TRAINED and already adapted to `data` (its classes and resolution). The int8 models
    are calibrated on the first `calibration_images` training images. Returns `fp32_top1` (torch),
    `onnx_int8_top1`, `tflite_int8_top1`, their drops from fp32 in points, the fp32 and int8
    latencies (`onnx_fp32_latency_ms`, `onnx_int8_latency_ms`, `tflite_...`; median of `runs` at
    batch 1 and `threads` threads) and the speed-ups (fp32 / int8). Without the 'tflite' extra the
    TFLite keys are None and `tflite_skipped` says how to install it. `time_it=False` skips the
    latencies (and the fp32 TFLite conversion they need): their keys are None. `models`: int8_models'
    result for this model and data, made beforehand. `val_images`: score only the first N held-out
    images (each runs alone through the batch-1 int8 models: about 3 ms an image for both)."""
    import torch  # deferred: torch takes ~2 s to load

    from nas.export.onnx import export_onnx, onnx_predict  # deferred: loads torch
    # deferred: loads torch
    from nas.export.tflite import (INSTALL_HINT, make_interpreter, runtime_version, tflite_available,
                                   tflite_predict, time_interpreter, to_tflite)
    from nas.export.timing import make_session, time_session  # deferred: loads onnxruntime

    model = _cpu_copy(model)
    shape = (1, 3, data.resolution, data.resolution)
    models = models or int8_models(model, data, calibration_images)
    fp32_onnx = export_onnx(model, shape)
    int8_onnx = models["onnx"]
    predicts = {"onnx_int8": onnx_predict(int8_onnx, threads)}
    latency = {}
    if time_it:
        latency = {"onnx_fp32": time_session(make_session(fp32_onnx, threads), runs=runs),
                   "onnx_int8": time_session(make_session(int8_onnx, threads), runs=runs)}
    tflite = tflite_available() and "tflite" in models
    if tflite:
        int8_tflite = models["tflite"]
        predicts["tflite_int8"] = tflite_predict(int8_tflite, threads)
        if time_it:
            latency["tflite_fp32"] = time_interpreter(make_interpreter(to_tflite(model, shape), threads), runs)
            latency["tflite_int8"] = time_interpreter(make_interpreter(int8_tflite, threads), runs)

    correct = dict.fromkeys(["fp32", *predicts], 0)
    total = 0
    with torch.no_grad():
        for x, y in data.batches("val", 256, limit=val_images):
            x, y = x.cpu().contiguous(), y.cpu().numpy()
            correct["fp32"] += int((model(x).argmax(1).numpy() == y).sum())
            rows = x.numpy()
            for name, predict in predicts.items():
                got = np.array([int(np.argmax(predict(rows[i:i + 1]))) for i in range(rows.shape[0])])
                correct[name] += int((got == y).sum())
            total += y.shape[0]
    top1 = {k: v / total for k, v in correct.items()}
    result = {"val_images": total, "calibration_images": len(proxy_calibration(data, calibration_images)),
              "threads": threads, "timed_runs": runs,
              "fp32_top1": top1["fp32"]}
    for fmt in ("onnx", "tflite"):
        int8 = top1.get(f"{fmt}_int8")
        fp32_ms = latency[f"{fmt}_fp32"].median if f"{fmt}_fp32" in latency else None
        int8_ms = latency[f"{fmt}_int8"].median if f"{fmt}_int8" in latency else None
        result.update({f"{fmt}_int8_top1": int8,
                       f"{fmt}_int8_drop_points": None if int8 is None else round(100 * (top1["fp32"] - int8), 2),
                       f"{fmt}_fp32_latency_ms": fp32_ms, f"{fmt}_int8_latency_ms": int8_ms,
                       f"{fmt}_speedup": None if int8_ms is None else round(fp32_ms / int8_ms, 3)})
    result["tflite_runtime"] = runtime_version() if tflite else None
    if not tflite:
        result["tflite_skipped"] = f"the optional extra 'tflite' is not installed: {INSTALL_HINT}"
    return result
