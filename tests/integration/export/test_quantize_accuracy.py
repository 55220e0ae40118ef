"""The int8 accuracy check (nas.export.quantize.int8_check) on a network trained on the proxy task, with
its TFLite conversion in the converter process."""
import pytest
import torch

from helpers.data import TINY, one_torch_thread  # noqa: F401 (autouse fixture)
from nas.accuracy.proxy_config import DataConfig, TrainConfig
from nas.accuracy.proxy_data import load_data
from nas.accuracy.short_training import Trainer
from nas.export import quantize


@pytest.fixture(scope="module")
def trained(fashion_mnist):
    """TINY adapted to the proxy task and trained for a few hundred steps (72% top-1 on
    Fashion-MNIST, near 100% on the synthetic stand-in): a network whose accuracy int8 can lose."""
    torch.set_num_threads(1)
    data = load_data(DataConfig(path=str(fashion_mnist)), train_images=1500, val_images=300)
    trainer = Trainer(TINY, data, TrainConfig(train_images=1500, val_images=300, steps=300, batch_size=64,
                                              bn_images=500))
    result = trainer.run()
    return trainer.model, data, result.accuracy


def test_int8_check_keeps_top1_within_a_few_points_of_fp32(trained):
    model, data, trained_top1 = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = quantize.int8_check(model, data, runs=30)  # the default 256 calibration images: 64 lose TFLite 5 points
    assert r["val_images"] == 300 and r["calibration_images"] == 256 and r["threads"] == 1
    assert r["fp32_top1"] == pytest.approx(trained_top1)  # the same images, the same network as training saw
    assert r["fp32_top1"] >= 0.6, r  # well above chance (0.1): there is accuracy to lose
    for fmt in ("onnx", "tflite"):
        assert abs(r[f"{fmt}_int8_top1"] - r["fp32_top1"]) <= 0.05, (fmt, r)
        assert r[f"{fmt}_int8_drop_points"] == pytest.approx(100 * (r["fp32_top1"] - r[f"{fmt}_int8_top1"]), abs=0.01)
        assert r[f"{fmt}_fp32_latency_ms"] > 0 and r[f"{fmt}_int8_latency_ms"] > 0
        assert r[f"{fmt}_speedup"] == pytest.approx(r[f"{fmt}_fp32_latency_ms"] / r[f"{fmt}_int8_latency_ms"], rel=1e-2)
    assert r["tflite_runtime"].startswith("ai-edge-litert") and "tflite_skipped" not in r
    # The caller's model is left as it was (the check works on a copy).
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
