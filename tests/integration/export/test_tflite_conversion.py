"""`python -m nas.export --tflite` and `--int8` with real conversions (litert-torch, in its converter
process): the files, their checks against torch, their timing."""
import numpy as np
import onnx
import torch

from helpers import run_cli, run_inprocess
from helpers.data import one_torch_thread  # noqa: F401 (autouse fixture)
from helpers.export import SMALL, files, last_json, spec_file  # noqa: F401 (spec_file: fixture)
from nas.export import tflite as tflite_module
from nas.export.verify import VERIFY_TOLERANCE


def test_tflite_round_trip(tmp_path, spec_file):
    out = tmp_path / "m.tflite"
    # A real process: what reaches its file descriptors 1 and 2 is what a user sees.
    proc = run_cli("nas.export", str(spec_file), "--tflite", str(out), "--verify", "--runs", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # the converter's native banners are kept out
    assert len(proc.stdout.strip().splitlines()) == 1, proc.stdout  # and its progress lines
    r = last_json(proc.stdout)
    assert r["tflite"] == str(out) and r["tflite_runtime"].startswith("ai-edge-litert ")
    assert r["tflite_verified"] is True and 0 <= r["tflite_max_abs_diff"] <= VERIFY_TOLERANCE
    assert r["tflite_timed_runs"] == 30
    assert r["tflite_latency_p10_ms"] <= r["tflite_latency_ms"] <= r["tflite_latency_p90_ms"]
    # The one file's figures also under the plain keys, with the runtime they come from.
    assert r["latency_runtime"] == "litert" and r["latency_ms"] == r["tflite_latency_ms"] > 0
    assert r["max_abs_diff"] == r["tflite_max_abs_diff"] and r["int8"] is False and r["threads"] == 1
    assert files(tmp_path) == ["m.tflite", "tiny.yaml"]
    # The file on disk is the verified one: LiteRT on it gives torch's logits (random BN statistics too).
    from nas.export.onnx import model_for_export

    model = model_for_export(SMALL)
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    got = tflite_module.run_float(tflite_module.make_interpreter(out.read_bytes()), x)
    with torch.no_grad():
        assert np.max(np.abs(got - model(torch.from_numpy(x)).numpy())) <= VERIFY_TOLERANCE


def test_int8_onnx_and_tflite_are_written_and_close_to_fp32(tmp_path, spec_file, capsys):
    onnx_out, tflite_out = tmp_path / "m8.onnx", tmp_path / "m8.tflite"
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(onnx_out), "--tflite",
                                       str(tflite_out), "--int8", "--verify", "--runs", "30", "--json"], capsys)
    assert code == 0, err
    r = last_json(stdout)
    assert r["int8"] is True and r["calibration"] == {"source": "random", "images": 16}  # random weights
    assert r["latency_runtime"] == "onnxruntime" and r["latency_ms"] > 0 and r["tflite_latency_ms"] > 0
    for prefix in ("", "tflite_"):
        assert r[f"{prefix}verified"] is True
        # int8 logits differ from float ones, but by a small part of their range, with the same arg-max mostly.
        assert r[f"{prefix}max_abs_diff"] <= 0.1 * r[f"{prefix}output_range"], r
        assert r[f"{prefix}top1_agreement"] >= 0.75, r
    graph = onnx.load(str(onnx_out)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    interp = tflite_module.make_interpreter(tflite_out.read_bytes())
    assert interp.get_input_details()[0]["dtype"] == np.int8 and interp.get_output_details()[0]["dtype"] == np.int8
    assert files(tmp_path) == ["m8.onnx", "m8.tflite", "tiny.yaml"]
