"""`python -m nas.export --tflite` and `--int8`: the file, its check against torch, its timing, the
flags' errors and exit statuses, and nothing written on any failure.

Real conversions cost seconds each (litert-torch), so only two tests convert; the failure paths
replace the converter and the check."""
import json
import math
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from helpers import check_user_error, run_cli, run_inprocess
from helpers.data import TINY, one_torch_thread  # noqa: F401 (autouse fixture)
from nas.core.model import build_model
from nas.core.spec import save_spec
from nas.export import onnx as onnx_module
from nas.export import tflite as tflite_module
from nas.export import verify as verify_module
from nas.export.verify import VERIFY_TOLERANCE

SMALL = replace(TINY, resolution=32, num_classes=10)


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    save_spec(SMALL, path)
    return path


def _last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_tflite_round_trip(tmp_path, spec_file):
    out = tmp_path / "m.tflite"
    # A real process: what reaches its file descriptors 1 and 2 is what a user sees.
    proc = run_cli("nas.export", str(spec_file), "--tflite", str(out), "--verify", "--runs", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # the converter's native banners are kept out
    assert len(proc.stdout.strip().splitlines()) == 1, proc.stdout  # and its progress lines
    r = _last_json(proc.stdout)
    assert r["tflite"] == str(out) and r["tflite_runtime"].startswith("ai-edge-litert ")
    assert r["tflite_verified"] is True and 0 <= r["tflite_max_abs_diff"] <= VERIFY_TOLERANCE
    assert r["tflite_timed_runs"] == 30
    assert r["tflite_latency_p10_ms"] <= r["tflite_latency_ms"] <= r["tflite_latency_p90_ms"]
    # The one file's figures also under the plain keys, with the runtime they come from.
    assert r["latency_runtime"] == "litert" and r["latency_ms"] == r["tflite_latency_ms"] > 0
    assert r["max_abs_diff"] == r["tflite_max_abs_diff"] and r["int8"] is False and r["threads"] == 1
    assert _files(tmp_path) == ["m.tflite", "tiny.yaml"]
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
    r = _last_json(stdout)
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
    assert _files(tmp_path) == ["m8.onnx", "m8.tflite", "tiny.yaml"]


def _fake_converter(monkeypatch):
    def convert(model, input_shape, quant_config=None):
        return b"not a flatbuffer: never run, the check is replaced too"
    monkeypatch.setattr(tflite_module, "to_tflite", convert)


@pytest.mark.parametrize("diff", [1e-3, math.nan])
def test_failed_tflite_check_writes_neither_file_and_exits_1(tmp_path, spec_file, capsys, monkeypatch, diff):
    _fake_converter(monkeypatch)
    monkeypatch.setattr(tflite_module, "max_abs_diff", lambda model, tflite, input_shape, seed=0: diff)
    out = tmp_path / "out"
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(out / "m.onnx"), "--tflite",
                                       str(out / "m.tflite"), "--verify", "--no-time", "--json"], capsys)
    assert code == 1, (code, err)  # the converter or runtime is at fault, not the input
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "LiteRT disagrees with torch" in lines[0]
    assert "m.onnx and " in lines[0] and "m.tflite not written" in lines[0], lines[0]
    assert stdout == ""
    assert not out.exists() or _files(out) == []  # the ONNX file passed its check, and is not written either


def test_int8_check_with_non_finite_outputs_exits_1(tmp_path, spec_file, capsys, monkeypatch):
    def non_finite(model, predict, input_shape, samples=32, seed=0):
        return {"max_abs_diff": math.nan, "top1_agreement": 0.0, "output_range": 1.0}
    monkeypatch.setattr(verify_module, "int8_agreement", non_finite)
    out = tmp_path / "m8.onnx"
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(out), "--int8", "--verify",
                                       "--no-time"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, (code, err)
    assert "int8 ONNX Runtime gives non-finite outputs" in lines[0] and "m8.onnx not written" in lines[0]
    assert not out.exists()


def test_trained_weights_calibrate_on_proxy_images(tmp_path, spec_file, capsys, fashion_mnist):
    torch.save(build_model(SMALL).state_dict(), tmp_path / "w.pt")
    out = tmp_path / "m8.onnx"
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(out), "--int8", "--weights",
                                       str(tmp_path / "w.pt"), "--data", str(fashion_mnist),
                                       "--calibration-images", "24", "--no-time", "--json"], capsys)
    assert code == 0, err
    assert err.strip() == "", err  # no quantizer advice nor "Expected bias ... initializer" warnings
    assert _last_json(stdout)["calibration"] == {"source": "data", "dataset": "fashion-mnist",
                                                 "path": str(fashion_mnist), "images": 24}
    assert out.stat().st_size > 0


def test_without_the_extra_one_line_says_how_to_install_it(tmp_path, spec_file, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("exported before the extra was looked for")

    monkeypatch.setattr(tflite_module, "tflite_available", lambda: False)
    monkeypatch.setattr(onnx_module, "export_onnx", no_work)
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(tmp_path / "m.onnx"), "--tflite",
                                       str(tmp_path / "m.tflite")], capsys)
    check_user_error(code, err, "--tflite", "optional extra 'tflite'", "pip install 'nas-mobilenetv3[tflite]'")
    assert _files(tmp_path) == ["tiny.yaml"]


@pytest.mark.parametrize("args, needle", [
    ([], "give --onnx OUT.onnx, --tflite OUT.tflite or both"),
    (["--tflite", " "], "--tflite: empty path"),
    (["--onnx", "{tmp}/m", "--tflite", "{tmp}/m"], "--onnx and --tflite: the same path"),
    (["--onnx", "{tmp}/m.onnx", "--calibration", "data"], "--calibration: calibrates an int8 model, give --int8"),
    (["--onnx", "{tmp}/m.onnx", "--data", "{tmp}"], "--data: calibrates an int8 model"),
    (["--onnx", "{tmp}/m.onnx", "--int8", "--calibration", "random", "--dataset", "cifar10"],
     "--calibration random: --data/--dataset name calibration images"),
    (["--tflite", "{tmp}/m.tflite", "--runs", "10"], "at least 30 timed runs"),
])
def test_flag_errors_are_one_line_exit_2(tmp_path, spec_file, capsys, args, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), *argv], capsys)
    check_user_error(code, err, needle)
    assert _files(tmp_path) == ["tiny.yaml"]


def test_output_paths_that_cannot_be_written_are_bad_input_before_any_work(tmp_path, spec_file, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("converted before the output paths were checked")
    monkeypatch.setattr(tflite_module, "to_tflite", no_work)
    (tmp_path / "file").write_text("x")
    for flag, path, needle in [("--tflite", tmp_path, "is a directory"),
                               ("--tflite", tmp_path / "file" / "m.tflite", "is not a directory"),
                               ("--onnx", tmp_path / "file" / "deeper" / "m.onnx", "is not a directory")]:
        code, stdout, err = run_inprocess(["nas.export", str(spec_file), flag, str(path)], capsys)
        check_user_error(code, err, str(path), flag, needle)
    assert _files(tmp_path) == ["file", "tiny.yaml"]


def test_missing_calibration_data_is_bad_input_and_nothing_is_written(tmp_path, spec_file, capsys):
    out = tmp_path / "m8.onnx"
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(out), "--int8", "--data",
                                       str(tmp_path / "nowhere")], capsys)
    check_user_error(code, err, "nowhere", "--data", "no such directory")
    assert not out.exists()
