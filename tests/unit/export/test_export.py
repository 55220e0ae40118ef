"""`nas.export` when its check fails or its input is not finite: nothing written, one line, the
exit status it documents; and every --json line is strict JSON."""
import json
import math
from dataclasses import replace

import pytest
import torch

from helpers import check_user_error, run_inprocess
from helpers.data import TINY
from nas.core.model import build_model
from nas.core.spec import save_spec
from nas.export import onnx as export_onnx_module
from nas.export.onnx import export_spec
from nas.export.verify import VERIFY_TOLERANCE
from nas.pipeline import stages
from nas.pipeline.runner import RunState, run_stages
from nas.runtime.cli import emit
from nas.runtime.errors import VerificationError
from nas.runtime.lock import run_lock

SMALL = replace(TINY, resolution=32, num_classes=10)  # exports in well under a second


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    save_spec(SMALL, path)
    return path


def _disagree(diff):
    def fake(model, onnx_bytes, input_shape, seed=0):
        return diff
    return fake


def test_a_passing_check_writes_the_model(tmp_path):
    out = tmp_path / "m.onnx"
    result = export_spec(SMALL, out, verify=True, time_it=False)
    assert result["verified"] and 0 <= result["max_abs_diff"] <= VERIFY_TOLERANCE
    assert out.stat().st_size > 0 and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


@pytest.mark.parametrize("diff", [1e-3, math.nan, math.inf])
def test_failed_check_writes_nothing_and_exits_1(tmp_path, spec_file, capsys, monkeypatch, diff):
    monkeypatch.setattr(export_onnx_module, "max_abs_diff", _disagree(diff))
    out = tmp_path / "out" / "m.onnx"
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(out), "--verify", "--json"],
                                      capsys)
    # 1, not 2: the exporter or runtime is at fault, not the user's input.
    assert code == 1, (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "disagrees with torch" in lines[0] and "m.onnx not written" in lines[0], lines[0]
    assert stdout == ""
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no temporary left either


def test_failed_check_leaves_an_earlier_file_as_it_was(tmp_path, monkeypatch):
    monkeypatch.setattr(export_onnx_module, "max_abs_diff", _disagree(1.0))
    out = tmp_path / "m.onnx"
    out.write_bytes(b"earlier")
    with pytest.raises(VerificationError):
        export_spec(SMALL, out, verify=True, time_it=False)
    assert out.read_bytes() == b"earlier" and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def _weights_with(tmp_path, value):
    """SMALL's weights with one non-finite value in one tensor; returns (path, that tensor's name)."""
    state = build_model(SMALL).state_dict()
    name = [k for k, v in state.items() if v.is_floating_point() and v.dim() == 4][2]  # a conv in the body
    state[name].view(-1)[5] = value
    path = tmp_path / "w.pt"
    torch.save(state, path)
    return path, name


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_bad_input(tmp_path, spec_file, capsys, monkeypatch, value):
    weights, tensor = _weights_with(tmp_path, value)

    def no_export(*args, **kwargs):
        raise AssertionError("exported before the weights were checked")

    monkeypatch.setattr(export_onnx_module, "export_onnx", no_export)
    out = tmp_path / "m.onnx"
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(out), "--weights", str(weights),
                                       "--verify"], capsys)
    check_user_error(code, err, "w.pt", tensor, "non-finite")
    assert not out.exists()


def test_finite_weights_still_export(tmp_path):
    state = build_model(SMALL).state_dict()
    torch.save(state, tmp_path / "w.pt")
    result = export_spec(SMALL, tmp_path / "m.onnx", weights=str(tmp_path / "w.pt"), verify=True, time_it=False)
    assert result["verified"] and (tmp_path / "m.onnx").exists()


def _strict(line):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(line, parse_constant=refuse)


def test_emit_writes_strict_json(capsys):
    result = {"max_abs_diff": math.nan, "hi": math.inf, "rows": [{"lo": -math.inf, "ok": 1.5}], "t": (math.nan, 2),
              "name": "x", "n": 3, "flag": True, "none": None}
    emit(result, True, lambda r: "human")
    line = capsys.readouterr().out.strip()
    assert "NaN" not in line and "Infinity" not in line
    assert _strict(line) == {"max_abs_diff": None, "hi": None, "rows": [{"lo": None, "ok": 1.5}], "t": [None, 2],
                             "name": "x", "n": 3, "flag": True, "none": None}
    assert result["max_abs_diff"] != result["max_abs_diff"]  # the caller's dict is left alone (NaN)


def test_export_json_line_is_strict(tmp_path, spec_file, capsys):
    code, stdout, err = run_inprocess(["nas.export", str(spec_file), "--onnx", str(tmp_path / "m.onnx"), "--verify",
                                       "--no-time", "--json"], capsys)
    assert code == 0, err
    result = _strict(stdout.strip().splitlines()[-1])
    assert result["verified"] is True and result["max_abs_diff"] <= VERIFY_TOLERANCE


def test_pipeline_export_stage_that_fails_its_check_leaves_no_onnx(tmp_path, monkeypatch):
    monkeypatch.setattr(export_onnx_module, "max_abs_diff", _disagree(0.5))
    save_spec(SMALL, tmp_path / "final.yaml")
    state = RunState(tmp_path / "pipeline.json", resume=False)
    ctx = stages.Context(config=None, run_dir=tmp_path, prepared=None, resume=False, state=state)
    export = [stage for stage in stages.STAGES if stage[0] == "export"]
    with pytest.raises(VerificationError, match=r"^export stage: ONNX Runtime disagrees with torch \(max \|diff\| 0.5.*final.onnx not written"):
        run_stages(export, state, ctx)
    assert not (tmp_path / "final.onnx").exists()
    assert state.done("export") is None  # a resumed run exports again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.yaml"]


def test_search_whose_export_check_fails_is_one_line_exit_1_with_the_resume_hint(tmp_path, monkeypatch, capsys):
    import nas.pipeline.launch as launch

    def failing_pipeline(config, run_dir, resume, prepared):
        raise VerificationError("export stage: ONNX Runtime disagrees with torch (max |diff| 0.5); final.onnx not written")
    monkeypatch.setattr(launch, "run_pipeline", failing_pipeline)
    out = tmp_path / "run"
    code, stdout, err = run_inprocess(["nas.search", "--space", "mobilenetv3_small", "--target-ms", "5",
                                       "--budget", "smoke", "--out", str(out)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and stdout == "" and len(lines) == 1, (code, stdout, err)
    assert lines[0].startswith("error: export stage: ONNX Runtime disagrees") and "--resume" in lines[0]
    assert not (out / "final.onnx").exists()
    with run_lock(out):  # released: a --resume can take it
        pass
