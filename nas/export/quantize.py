"""Post-training static int8 quantization of exported networks.

ONNX: ONNX Runtime's QDQ quantizer (per-channel int8 weights, int8 activations, min-max
calibration) on a few batches of calibration input. Calibration input is what the network will see:
proxy-task images for a trained network, random normal input for an op or network timed with random
weights (its latency does not depend on the values).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


def random_calibration(input_shape: Sequence[int], batches: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Calibration input for a network whose weights are random (latency tables, tests)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(input_shape)).astype(np.float32) for _ in range(batches)]


def quantize_onnx(onnx_bytes: bytes, calibration: Iterable[np.ndarray], per_channel: bool = True) -> bytes:
    """int8 QDQ ONNX of a float model whose one input is named `input` (as nas.export.onnx writes)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self, batches):
            self._it = iter([{"input": np.ascontiguousarray(b, dtype=np.float32)} for b in batches])

        def get_next(self):
            return next(self._it, None)

    # The quantizer works on files (and writes its calibration scratch beside them): one private dir.
    with tempfile.TemporaryDirectory(prefix="nas-int8-") as tmp:
        src, dst = Path(tmp, "float.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(onnx_bytes)
        cwd = os.getcwd()
        os.chdir(tmp)  # the min-max calibrater writes augmented_model.onnx into the working directory
        try:
            quantize_static(str(src), str(dst), Reader(calibration), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            per_channel=per_channel, calibrate_method=CalibrationMethod.MinMax)
        finally:
            os.chdir(cwd)
        return dst.read_bytes()
