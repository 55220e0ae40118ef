"""`python -m nas.latency` and `nas.inspect` in real processes: a build killed mid-way and resumed, the
standalone timer a device runs from its own folder, and the entry points' one-line errors."""
import json
import signal
import subprocess
import sys
import time

from helpers import DATA, REFERENCE, ROOT, assert_user_error, run_cli, run_inprocess
from nas.latency import devices
from nas.latency.calibrate_host import calibration_specs
from nas.latency.ops import ops_of, space_ops
from nas.latency.table import LatencyTable
from nas.core.space import load_space

TINY = DATA / "tiny_space.yaml"


def test_interrupted_build_keeps_a_valid_table_and_resumes(tmp_path, capsys):
    path = tmp_path / "host.yaml"
    cmd = [sys.executable, "-m", "nas.latency", "build", "--space", str(TINY), "--table", str(path),
           "--chunk", "8", "--calibration-samples", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120  # a bound on a hung build, not the moment of the kill
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # at the state: the first chunk is saved, the others are not
    proc.wait()
    partial = LatencyTable.load(path)  # whole, never half-written
    assert 8 <= len(partial) < len(space_ops(load_space(TINY)))
    code, out, err = run_inprocess([*cmd[2:], "--json"], capsys)  # the resume: no torch import
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])
    assert result["measured"] == result["ops"] - len(partial)
    full = LatencyTable.load(path)
    assert all(full.ops[k] == t for k, t in partial.ops.items())  # kept, not re-measured
    assert full.calibration["fitted_on"] == 3


def test_export_ops_standalone_timer_and_import(tmp_path, capsys):
    out = tmp_path / "ops"
    code, stdout, err = run_inprocess(["nas.latency", "export-ops", "--space", str(TINY), "--out", str(out),
                                       "--calibration-samples", "3", "--json"], capsys)
    assert code == 0, err
    space = load_space(TINY)
    networks = calibration_specs(space, 3, seed=0)  # the seed and 3 samples
    ops = {op.key for op in space_ops(space)} | {op.key for s in networks for op in ops_of(s)}
    assert json.loads(stdout.splitlines()[-1])["ops"] == len(ops)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["entries"]) == len(ops) + 4
    # The timer needs only onnxruntime and numpy: run it as a device would, from its own folder.
    timer = subprocess.run([sys.executable, "time_ops.py", "--rounds", "2", "--runs", "3", "--name", "board"],
                           cwd=out, capture_output=True, text=True, timeout=300)
    assert timer.returncode == 0, timer.stderr
    table_path = tmp_path / "board.yaml"
    code, stdout, err = run_inprocess(["nas.latency", "import", "--device", "board", "--timings",
                                       str(out / "timings.json"), "--out", str(table_path), "--json"], capsys)
    assert code == 0, err
    table = LatencyTable.load(table_path)
    assert table.device["name"] == "board" and table.calibration["fitted_on"] == 4
    assert set(table.ops) == ops
    assert devices.get_device(str(table_path)).predict(space.seed_spec()).ms > 0


def test_bad_flag_from_a_real_process():
    # One real `python -m nas.latency` error: the entry point itself (the cases above run in-process).
    assert_user_error(run_cli("nas.latency", "export-ops"), "--out")


def test_unknown_device():
    proc = run_cli("nas.inspect", str(REFERENCE / "mobilenetv3_small.yaml"), "--device", "nokia3310")
    assert_user_error(proc, "unknown device", "pixel1")
