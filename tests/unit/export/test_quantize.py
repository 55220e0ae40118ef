"""int8 export (nas.export.quantize): the pieces of the accuracy check (the check itself on a network
trained on the proxy task, with its TFLite conversion: tests/integration/export/test_quantize_accuracy.py)."""
import logging
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from helpers.data import TINY, one_torch_thread  # noqa: F401 (autouse fixture)
from nas.accuracy.proxy_config import DataConfig
from nas.accuracy.proxy_data import load_data
from nas.core.model import build_model
from nas.export import quantize
from nas.export import tflite as tflite_module
from nas.export.onnx import export_onnx, onnx_predict
from nas.export.verify import int8_agreement

SMALL = replace(TINY, resolution=32, num_classes=10)
SHAPE = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def data(fashion_mnist):
    """A few proxy images: enough to calibrate and score an untrained network."""
    return load_data(DataConfig(path=str(fashion_mnist)), train_images=64, val_images=64)


def test_int8_check_without_the_extra_reports_onnx_only(data, monkeypatch):
    model = build_model(SMALL).eval()

    def absent(*args, **kwargs):
        raise AssertionError("converted to TFLite without the extra")

    monkeypatch.setattr(tflite_module, "tflite_available", lambda: False)
    monkeypatch.setattr(quantize, "tflite_int8", absent)
    r = quantize.int8_check(model, data, calibration_images=16, runs=30)
    assert r["onnx_int8_top1"] is not None and r["onnx_speedup"] > 0
    assert all(r[k] is None for k in ("tflite_int8_top1", "tflite_int8_drop_points", "tflite_fp32_latency_ms",
                                      "tflite_int8_latency_ms", "tflite_speedup", "tflite_runtime"))
    assert "pip install 'nas-mobilenetv3[tflite]'" in r["tflite_skipped"]


def test_proxy_calibration_is_training_images_as_the_network_sees_them(data):
    rows = quantize.proxy_calibration(data, 5)
    assert len(rows) == 5 and all(r.shape == SHAPE and r.dtype == np.float32 for r in rows)
    expected = data.inputs(data.train_x[:5]).contiguous().numpy()
    assert np.array_equal(np.concatenate(rows), expected)


def test_calibration_batches_become_rows_and_none_is_refused():
    rows = quantize._rows([np.ones((3, 3, 4, 4), np.float32), np.zeros((1, 3, 4, 4), np.float64)])
    assert [r.shape for r in rows] == [(1, 3, 4, 4)] * 4 and all(r.dtype == np.float32 for r in rows)
    with pytest.raises(ValueError, match="at least one input"):
        quantize._rows([])


def test_int8_onnx_of_default_initialised_bn_quantizes_every_conv(caplog):
    # Default BN has all-zero biases, which the exporter shares through Identity nodes.
    model = build_model(SMALL).eval()
    fp32 = export_onnx(model, SHAPE)
    assert "Identity" in {n.op_type for n in onnx.load_from_string(fp32).graph.node}
    with caplog.at_level(logging.WARNING):
        int8 = quantize.quantize_onnx(fp32, quantize.random_calibration(SHAPE, batches=4))
    assert not [r for r in caplog.records if "initializer" in r.getMessage() or "pre-processing" in r.getMessage()]
    graph = onnx.load_from_string(int8).graph
    assert "Identity" not in {n.op_type for n in graph.node}
    r = int8_agreement(model, onnx_predict(int8), SHAPE, samples=8)
    assert np.isfinite(r["max_abs_diff"]) and 0 <= r["top1_agreement"] <= 1


def test_quantizing_leaves_the_root_logger_without_handlers_of_its_own(monkeypatch):
    """ONNX Runtime's quantizer calls logging.basicConfig on import: every line of ours would print twice."""
    import logging
    import sys

    from nas.export.onnx import export_onnx

    for name in [m for m in sys.modules if m.startswith("onnxruntime.quantization")]:
        monkeypatch.delitem(sys.modules, name)  # import it afresh, as a command does
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a command (pytest adds its own)
    before = list(logging.getLogger().handlers)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    quantize.quantize_onnx(export_onnx(model, (1, 3, 8, 8)), quantize.random_calibration((1, 3, 8, 8), 2))
    assert logging.getLogger().handlers == before
