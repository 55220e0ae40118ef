"""Host tables measured with the LiteRT interpreter, int8 host tables and the conversion cache: real
conversions in the converter process, and builds that calibrate in a child process.

A TFLite conversion costs seconds an op (docs/benchmarks.md), so everything here runs on MICRO,
tiny_space.yaml cut down to five ops (one searchable block, kernel 3 or 5) and two calibration
networks, built once per module."""
import contextlib
import io
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from nas.core.space import load_space
from nas.latency import build as build_module
from nas.latency.backend import LiteRTBackend, OnnxBackend, make_backend
from nas.latency.build import Schedule, measure_ops
from nas.latency.devices import get_device, host_device, host_fingerprint_of, host_table_path, load_host_table
from nas.latency.measure import host_fingerprint
from nas.latency.ops import ops_of, space_ops
from nas.latency.table import LatencyTable
from nas.runtime.errors import UserError
from helpers import DATA, check_user_error, run_inprocess

MICRO = (DATA / "micro_space.yaml").read_text()  # tiny_space.yaml cut to five ops
FAST = Schedule(rounds=2, runs_per_round=4, warmup=1)


def _cli(argv):
    """`python -m nas.latency argv` in this process: its last line of stdout, as JSON."""
    from nas.latency.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    folder = tmp_path_factory.mktemp("litert")
    path = folder / "micro.yaml"
    path.write_text(MICRO)
    return path


@pytest.fixture(scope="module")
def litert_build(micro):
    """One host-litert build of MICRO: its ops, two calibration networks, the fresh-process calibration."""
    table = micro.parent / "litert.yaml"
    result = _cli(["build", "--device", "host-litert", "--space", str(micro), "--table", str(table),
                   "--calibration-samples", "1", "--json"])
    return table, result


def test_host_litert_build_reports_its_costs_and_calibrates(micro, litert_build):
    table_path, result = litert_build
    table = LatencyTable.load(table_path)
    keys = {op.key for op in space_ops(load_space(micro))}
    assert set(table.ops) == keys and result["measured"] == len(keys) and result["device"] == "host-litert"
    assert table.device["runtime"].startswith("ai-edge-litert") and table.device["provider"] == "XNNPACK"
    assert table.device["converter"].startswith("litert-torch") and table.device["precision"] == "fp32"
    assert table.calibration["fitted_on"] == 2 and table.calibration["scale"] > 0
    # Where the time went: converting 5 ops here and 2 networks in the calibrating child, then timing them
    # (a conversion left in the cache by an earlier test of the session counts as cached, not converted).
    assert result["models_converted"] + result["models_cached"] == len(keys) + 2
    assert result["wall_s"] >= result["convert_s"] + result["time_s"] > 0 and result["time_s"] > 0


def test_a_second_build_converts_nothing(micro, litert_build):
    backend = LiteRTBackend()
    ops = space_ops(load_space(micro))
    assert all(backend.cache_path(("op", op.key, 0)).is_file() for op in ops)
    measured = measure_ops(ops, schedule=FAST, backend=backend)
    assert set(measured) == {op.key for op in ops}
    assert backend.stats["converted"] == 0 and backend.stats["cached"] == len(ops)
    assert backend.stats["convert_s"] == 0 and backend.stats["time_s"] > 0


def test_host_litert_lazy_fill_and_prediction(micro, litert_build, tmp_path, monkeypatch):
    table_path, _ = litert_build
    # The default table in the cache, so that get_device('host-litert') finds it calibrated.
    here = host_table_path(1, LiteRTBackend())
    shutil.copyfile(table_path, here)
    real = build_module.measure_ops
    calls = []
    monkeypatch.setattr(build_module, "measure_ops",
                        lambda ops, **kw: calls.append(len(ops)) or real(ops, **{**kw, "schedule": FAST}))
    device = get_device("host-litert")
    assert device.name == "host-litert" and device.calibrated
    seed = load_space(micro).seed_spec()
    k7 = seed.with_blocks([*seed.blocks[:-1], replace(seed.blocks[-1], k=7)])  # one op the table lacks
    first = device.predict(seed)
    assert calls == [] and first.p10 <= first.ms <= first.p90
    c = LatencyTable.load(table_path).calibration
    assert first.ms == pytest.approx(c["scale"] * sum(device.table.ops[o.key].median for o in ops_of(seed))
                                     + c["offset_ms"], rel=1e-6)
    grown = device.predict(k7)
    assert calls == [1] and grown.ms > 0
    assert {op.key for op in ops_of(k7)} <= set(LatencyTable.load(here).ops)  # measured once, saved


def test_host_litert_fingerprint_refusals(tmp_path, litert_build):
    backend = LiteRTBackend()
    path = tmp_path / "t.yaml"
    ours = host_fingerprint_of(backend, 1)
    LatencyTable({"name": "host-litert", **ours, "converter": "litert-torch 0.0.1"}, path=path).save()
    with pytest.raises(UserError, match="converter: table 'litert-torch 0.0.1'") as err:
        load_host_table(1, path, backend=backend)
    assert "build --device host-litert --force" in str(err.value)
    # An ONNX Runtime table is no LiteRT table, and the other way round.
    onnx = tmp_path / "onnx.yaml"
    LatencyTable({"name": "host", **host_fingerprint(1)}, path=onnx).save()
    with pytest.raises(UserError, match="runtime: table 'onnxruntime"):
        load_host_table(1, onnx, backend=backend)
    with pytest.raises(UserError, match="provider: table 'XNNPACK'"):
        load_host_table(1, litert_build[0])
    assert host_table_path(1, backend) != host_table_path(1) != host_table_path(1, make_backend("host-litert", "int8"))


def test_host_litert_validate_has_the_host_keys(micro, litert_build, capsys):
    table_path, _ = litert_build
    code, out, err = run_inprocess(["nas.latency", "validate", "--device", "host-litert", "--space", str(micro),
                                    "--table", str(table_path), "--samples", "2", "--json"], capsys)
    assert code == 0, err
    r = json.loads(out.splitlines()[-1])
    for key in ("samples", "within_5pct", "within_10pct", "spearman", "median_abs_err_pct", "max_abs_err_pct",
                "noise_pct", "mean_err_pct"):
        assert key in r
    assert r["device"] == "host-litert" and r["samples"] == 2 and r["models_converted"] == 2  # never cached


def test_int8_onnx_table_differs_from_fp32_and_is_refused_under_fp32(micro, tmp_path, capsys):
    path = tmp_path / "int8.yaml"
    r = _cli(["build", "--device", "host", "--precision", "int8", "--space", str(micro), "--table", str(path),
              "--calibration-samples", "1", "--json"])
    table = LatencyTable.load(path)
    assert r["device"] == "host:int8" and r["precision"] == "int8" and table.device["precision"] == "int8"
    assert table.calibration["fitted_on"] == 2 and len(table) == 5
    assert host_table_path(1, OnnxBackend("int8")).name.startswith("host-int8-t1-")
    assert host_table_path(1, OnnxBackend("int8")) != host_table_path(1)
    op = space_ops(load_space(micro))[2]
    assert b"QuantizeLinear" in OnnxBackend("int8").op_model(op) and b"QuantizeLinear" not in OnnxBackend().op_model(op)
    # Its validate measures int8 networks; the same table asked for as fp32 is refused in one line.
    code, out, err = run_inprocess(["nas.latency", "validate", "--device", "host:int8", "--space", str(micro),
                                    "--table", str(path), "--samples", "2", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["precision"] == "int8"
    code, _, err = run_inprocess(["nas.latency", "validate", "--device", "host", "--precision", "fp32",
                                  "--space", str(micro), "--table", str(path), "--samples", "2"], capsys)
    check_user_error(code, err, "int8.yaml", "precision: table 'int8' vs here 'fp32'")
    code, _, err = run_inprocess(["nas.latency", "validate", "--device", "host:int8", "--precision", "fp32"], capsys)
    check_user_error(code, err, "--precision")


def test_int8_tflite_ops_are_quantized(micro):
    from nas.export.tflite import make_interpreter

    op = space_ops(load_space(micro))[2]
    backend = LiteRTBackend("int8")
    timing = measure_ops([op], schedule=FAST, backend=backend)[op.key]
    assert timing.median > 0 and backend.stats["converted"] + backend.stats["cached"] == 1
    interp = make_interpreter(backend.op_model(op))
    assert any(d["dtype"] == np.int8 for d in interp.get_tensor_details())
    fp32 = make_interpreter(LiteRTBackend().op_model(op))
    assert not any(d["dtype"] == np.int8 for d in fp32.get_tensor_details())
    assert list(interp.get_input_details()[0]["shape"]) == [1, 16, 16, 8]  # channels-last, as converted


CONVERT_THEN_CHECK = """
import sys
from nas.core.space import load_space
from nas.latency.backend import LiteRTBackend
if __name__ == "__main__":
    backend = LiteRTBackend()
    model = backend.spec_model(load_space(sys.argv[1]).seed_spec(), seed=7, cache=False)
    backend.runner(model, 1)()
    print(backend.stats["converted"], "litert_torch" in sys.modules, "jax" in sys.modules)
"""


def test_the_timing_process_never_loads_the_converter(micro, tmp_path):
    """With litert-torch (and jax) loaded, LiteRT ran faster in the same process (docs/benchmarks.md):
    conversions happen in a converter process, so what a host-litert table times is what an app would see."""
    import os
    import subprocess
    import sys

    script = tmp_path / "convert_then_time.py"
    script.write_text(CONVERT_THEN_CHECK)
    env = {k: v for k, v in os.environ.items() if k != "NAS_CONVERT_IN_PROCESS"}
    out = subprocess.run([sys.executable, str(script), str(micro)], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out == ["1", "False", "False"]
