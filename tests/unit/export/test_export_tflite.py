"""`python -m nas.export --tflite` and `--int8`: the file, its check against torch, its timing, the
flags' errors and exit statuses, and nothing written on any failure.

Here the failure paths replace the converter and the check; the real conversions (in the converter
process) are tests/integration/export/test_tflite_conversion.py."""
import math

import pytest
import torch

from helpers import check_user_error, run_inprocess
from helpers.data import one_torch_thread  # noqa: F401 (autouse fixture)
from helpers.export import SMALL, files, last_json, spec_file  # noqa: F401 (spec_file: fixture)
from nas.core.model import build_model
from nas.export import onnx as onnx_module
from nas.export import tflite as tflite_module
from nas.export import verify as verify_module


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
    assert not out.exists() or files(out) == []  # the ONNX file passed its check, and is not written either


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
    assert last_json(stdout)["calibration"] == {"source": "data", "dataset": "fashion-mnist",
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
    assert files(tmp_path) == ["tiny.yaml"]


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
    assert files(tmp_path) == ["tiny.yaml"]


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
    assert files(tmp_path) == ["file", "tiny.yaml"]


def test_missing_calibration_data_is_bad_input_and_nothing_is_written(tmp_path, spec_file, capsys):
    out = tmp_path / "m8.onnx"
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(out), "--int8", "--data",
                                       str(tmp_path / "nowhere")], capsys)
    check_user_error(code, err, "nowhere", "--data", "no such directory")
    assert not out.exists()
