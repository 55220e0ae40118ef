"""The inspect and export commands, as a user runs them: results, and one-line errors with exit 2."""
import json

import onnx
import pytest

from helpers import REFERENCE, ROOT, assert_user_error, check_user_error, run_cli, run_inprocess


def test_inspect_json():
    proc = run_cli("nas.inspect", str(REFERENCE / "mobilenetv3_large.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["params"] == 5_483_032
    assert result["macs"] == 216_589_760


def test_export_verify_and_time(tmp_path):
    out = tmp_path / "small.onnx"
    proc = run_cli("nas.export", str(REFERENCE / "mobilenetv3_small.yaml"), "--onnx", str(out), "--verify", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["max_abs_diff"] <= 1e-4 and result["verified"]
    assert result["latency_ms"] > 0 and result["timed_runs"] >= 30
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    assert [p.name for p in tmp_path.iterdir()] == ["small.onnx"]  # no temporary left behind


def test_export_with_weights_round_trip(tmp_path, capsys):
    import torch

    from nas.core.model import build_model
    from nas.core.spec_file import load_spec
    spec_path = REFERENCE / "mobilenetv3_small_minimalistic.yaml"
    torch.manual_seed(3)
    model = build_model(load_spec(spec_path))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    proc = run_cli("nas.export", str(spec_path), "--onnx", str(tmp_path / "m.onnx"), "--weights",
                   str(tmp_path / "w.pt"), "--verify", "--no-time", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["verified"]
    # Weights of another architecture are a user error, not a traceback.
    code, _, err = run_inprocess(["nas.export", str(REFERENCE / "mobilenetv3_small.yaml"), "--onnx",
                                  str(tmp_path / "x.onnx"), "--weights", str(tmp_path / "w.pt")], capsys)
    check_user_error(code, err, "w.pt", "do not fit")
    assert not (tmp_path / "x.onnx").exists()


def test_export_error_from_the_entry_point(tmp_path):
    """The real `python -m nas.export`: a bad spec is one line and exit 2 (the fuzz suite runs the
    same errors in-process, for every spec fault and command)."""
    path = tmp_path / "case.yaml"
    path.write_text((REFERENCE / "mobilenetv3_small.yaml").read_text().replace("{k: 3, exp: 72", "{k: 4, exp: 72"))
    out = tmp_path / "out.onnx"
    assert_user_error(run_cli("nas.export", str(path), "--onnx", str(out)), "case.yaml", "blocks[1].k")
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["nas.inspect", "does/not/exist.yaml"], "not found"),
    (["nas.inspect", "search_spaces"], "directory"),
    (["nas.export", str(REFERENCE / "mobilenetv3_small.yaml")], "--onnx"),
    (["nas.export", str(REFERENCE / "mobilenetv3_small.yaml"), "--onnx", "o.onnx", "--threads", "0"], "--threads"),
    (["nas.export", str(REFERENCE / "mobilenetv3_small.yaml"), "--onnx", "o.onnx", "--runs", "5"], "--runs"),
    (["nas.export", str(REFERENCE / "mobilenetv3_small.yaml"), "--onnx", "o.onnx", "--bogus"], "--bogus"),
])
def test_bad_paths_and_flags(args, needle, capsys):
    code, _, err = run_inprocess(args, capsys)
    check_user_error(code, err, needle)
    assert not (ROOT / "o.onnx").exists()
