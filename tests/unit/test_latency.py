"""Latency tables: keys, files, lazy fill, fingerprints, interrupted builds, other devices."""
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from nas.runtime.errors import UserError
from nas.latency import devices
from nas.latency.build import Schedule, measure_ops
from nas.latency.calibrate_host import fit_scale_offset
from nas.latency.devices import TableDevice, host_device, load_host_table
from nas.latency.measure import Timing, host_fingerprint
from nas.latency.ops import ops_of, space_ops
from nas.latency.table import LatencyTable
from nas.core.space import load_space
from nas.core.spec import load_spec, scale_width
from helpers import REFERENCE, ROOT, assert_user_error, run_cli

TINY = ROOT / "tests" / "data" / "tiny_space.yaml"
FAST = Schedule(rounds=3, runs_per_round=10, warmup=2)


def test_keys_are_readable_and_stable():
    spec = load_spec(REFERENCE / "mobilenetv3_large.yaml")
    keys = [op.key for op in ops_of(spec)]
    assert len(keys) == len(spec.blocks) + 2
    assert keys[0] == "stem-in:224x224x3-out:16-k:3-s:2-act:hswish"
    assert keys[4] == "bneck-in:56x56x24-exp:72-out:40-k:5-s:2-se:1-act:relu"
    assert keys[-1] == "head-in:7x7x160-conv:960-fc:1280-act:hswish-classes:1000"
    assert keys == [op.key for op in ops_of(load_spec(REFERENCE / "mobilenetv3_large.yaml"))]
    a1 = [op.key for op in ops_of(load_spec(REFERENCE / "mnasnet_a1.yaml"))]
    assert a1[4] == "bneck-in:56x56x24-exp:72-out:40-k:5-s:2-se:mnas-act:relu"


def test_space_ops_cover_its_networks():
    space = load_space(TINY)
    keys = {op.key for op in space_ops(space)}
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert {op.key for op in ops_of(space.sample_spec(rng))} <= keys


def _table(tmp_path, n=3):
    ops = {f"op{i}": Timing(round(0.1 * (i + 1), 5), round(0.09 * (i + 1), 5), round(0.12 * (i + 1), 5), 36)
           for i in range(n)}
    return LatencyTable({"name": "x", "cpu": "c"}, ops, {"scale": 1.1, "offset_ms": 0.05}, path=tmp_path / "t.yaml")


def test_table_round_trip(tmp_path):
    table = _table(tmp_path)
    table.save()
    again = LatencyTable.load(tmp_path / "t.yaml")
    assert again.ops == table.ops and again.device == table.device and again.calibration == table.calibration


@pytest.mark.parametrize("damage, needle", [
    (lambda t: "".join(t.splitlines(True)[:-2]), "truncated"),  # cut at a line end
    (lambda t: t[: len(t) // 2], "YAML syntax"),  # cut mid-line
    (lambda t: t.replace("unit: ms", "unit: us"), "unit"),
    (lambda t: t.replace('"median": 0.2', '"median": "fast"'), "median"),
    (lambda t: t.replace('"p10": 0.18', '"p10": 0.5'), "p10 <= median"),
    (lambda t: "ops: [1, 2\n", "YAML syntax"),
    (lambda t: "", "empty"),
])
def test_corrupt_tables_are_clear_errors(tmp_path, damage, needle):
    _table(tmp_path).save()
    path = tmp_path / "t.yaml"
    path.write_text(damage(path.read_text()))
    with pytest.raises(UserError) as err:
        LatencyTable.load(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_corrupt_table_from_the_command_line(tmp_path):
    path = tmp_path / "board.yaml"
    _table(tmp_path).save(path)
    path.write_text(path.read_text()[:-40])
    proc = run_cli("nas.inspect", str(REFERENCE / "mobilenetv3_small.yaml"), "--device", str(path))
    assert_user_error(proc, "board.yaml")


def test_fingerprint_mismatch_is_refused(tmp_path):
    path = tmp_path / "host.yaml"
    LatencyTable({"name": "host", **host_fingerprint(1), "cpu": "Some Other CPU"}, path=path).save()
    with pytest.raises(UserError, match="another machine.*Some Other CPU"):
        load_host_table(1, path)
    assert load_host_table(1, path, force_new=True).device["cpu"] == host_fingerprint(1)["cpu"]


def test_lazy_fill_measures_missing_ops_once(tmp_path, monkeypatch):
    path = tmp_path / "host.yaml"
    space = load_space(TINY)
    table = load_host_table(1, path)
    table.calibration = {"scale": 1.0, "offset_ms": 0.0}
    table.save()
    calls = []
    real = measure_ops

    def counting(ops, **kw):
        calls.append(len(ops))
        return real(ops, schedule=FAST, **kw)

    monkeypatch.setattr("nas.latency.build.measure_ops", counting)
    device = host_device(1, path=path)
    spec = space.seed_spec()
    first = device.predict(spec)
    assert calls == [len({op.key for op in ops_of(spec)})]
    assert first.p10 <= first.ms <= first.p90
    assert device.predict(spec) == first and len(calls) == 1  # now in the table
    saved = LatencyTable.load(path)
    assert {op.key for op in ops_of(spec)} <= set(saved.ops)


def test_table_without_measurer_refuses_to_guess(tmp_path):
    device = TableDevice("board", _table(tmp_path))
    with pytest.raises(UserError, match="not in the table"):
        device.predict(load_spec(REFERENCE / "mobilenetv3_small.yaml"))


def test_prediction_grows_with_width_and_kernel(tmp_path):
    space = load_space(TINY)
    seed = space.seed_spec()
    wide = scale_width(seed, 2.0)
    big_k = seed.with_blocks([replace(b, k=7) for b in seed.blocks])
    ops = [op for s in (seed, wide, big_k) for op in ops_of(s)]
    table = LatencyTable({"name": "t"}, measure_ops(ops, schedule=FAST), {"scale": 1.0, "offset_ms": 0.0})
    device = TableDevice("t", table)
    base, w, k = device.predict_many([seed, wide, big_k])[:, 0]
    assert w > base and k > base


def test_fit_scale_offset_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    sums = rng.uniform(1, 10, 20)
    fit = fit_scale_offset(sums, 1.17 * sums + 0.2)
    assert fit["scale"] == pytest.approx(1.17, abs=1e-5) and fit["offset_ms"] == pytest.approx(0.2, abs=1e-5)


def test_interrupted_build_keeps_a_valid_table_and_resumes(tmp_path):
    path = tmp_path / "host.yaml"
    cmd = [sys.executable, "-m", "nas.latency", "build", "--space", str(TINY), "--table", str(path),
           "--chunk", "8", "--calibration-samples", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = LatencyTable.load(path)  # whole, never half-written
    assert 8 <= len(partial) < len(space_ops(load_space(TINY)))
    done = run_cli("nas.latency", *cmd[3:], "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["measured"] == result["ops"] - len(partial)
    full = LatencyTable.load(path)
    assert all(full.ops[k] == t for k, t in partial.ops.items())  # kept, not re-measured
    assert full.calibration["fitted_on"] == 3


def test_validate_reports_the_six_keys(tmp_path):
    path = tmp_path / "host.yaml"
    assert run_cli("nas.latency", "build", "--space", str(TINY), "--table", str(path),
                   "--calibration-samples", "4").returncode == 0
    proc = run_cli("nas.latency", "validate", "--space", str(TINY), "--table", str(path), "--samples", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    for key in ("samples", "within_5pct", "within_10pct", "spearman", "median_abs_err_pct", "noise_pct"):
        assert key in result
    assert result["samples"] == 4 and 0 <= result["within_10pct"] <= 1


def test_export_ops_standalone_timer_and_import(tmp_path):
    out = tmp_path / "ops"
    proc = run_cli("nas.latency", "export-ops", "--space", str(TINY), "--out", str(out), "--calibration-samples", "3",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["entries"]) == json.loads(proc.stdout.splitlines()[-1])["ops"] + 4
    # The timer needs only onnxruntime and numpy: run it as a device would, from its own folder.
    timer = subprocess.run([sys.executable, "time_ops.py", "--rounds", "2", "--runs", "3", "--name", "board"],
                           cwd=out, capture_output=True, text=True, timeout=300)
    assert timer.returncode == 0, timer.stderr
    table_path = tmp_path / "board.yaml"
    proc = run_cli("nas.latency", "import", "--device", "board", "--timings", str(out / "timings.json"),
                   "--out", str(table_path), "--json")
    assert proc.returncode == 0, proc.stderr
    table = LatencyTable.load(table_path)
    assert table.device["name"] == "board" and table.calibration["fitted_on"] == 4
    spec = load_space(TINY).seed_spec()
    assert devices.get_device(str(table_path)).predict(spec).ms > 0


@pytest.mark.parametrize("text, needle", [("{not json", "not valid JSON"), ('{"entries": 3}', "entries"),
                                          ('{"entries": [{"key": "a", "median": -1}]}', "median")])
def test_bad_timings_files(tmp_path, text, needle):
    path = tmp_path / "timings.json"
    path.write_text(text)
    proc = run_cli("nas.latency", "import", "--device", "x", "--timings", str(path), "--out", str(tmp_path / "x.yaml"))
    assert_user_error(proc, "timings.json", needle)
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("args, needle", [
    (["build", "--device", "pixel1"], "--device"),
    (["validate", "--samples", "0"], "--samples"),
    (["validate", "--space", "nope"], "unknown search space"),
    (["export-ops"], "--out"),
])
def test_bad_flags(args, needle):
    assert_user_error(run_cli("nas.latency", *args), needle)


def test_unknown_device():
    proc = run_cli("nas.inspect", str(REFERENCE / "mobilenetv3_small.yaml"), "--device", "nokia3310")
    assert_user_error(proc, "unknown device", "pixel1")
