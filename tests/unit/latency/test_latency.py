"""Latency tables: keys, files, lazy fill, fingerprints, other devices (a build killed and resumed, the
standalone timer and the commands in real processes: tests/integration/latency/test_latency_commands.py)."""
import json
from dataclasses import replace

import numpy as np
import pytest

from nas.runtime.errors import UserError
from nas.latency.build import Schedule, measure_ops
from nas.latency.calibrate_host import fit_scale_offset
from nas.latency.devices import TableDevice, get_device, host_device, load_host_table
from nas.export.timing import Timing
from nas.latency.measure import host_fingerprint
from nas.latency.ops import ops_of, space_ops
from nas.latency.table import LatencyTable
from nas.latency.validate import round_noise_pct, validate
from nas.core.space import load_space
from nas.core.spec_file import load_spec
from helpers import DATA, REFERENCE, check_user_error, run_inprocess

TINY = DATA / "tiny_space.yaml"
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


def test_corrupt_table_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "board.yaml"
    _table(tmp_path).save(path)
    path.write_text(path.read_text()[:-40])
    code, _, err = run_inprocess(["nas.inspect", str(REFERENCE / "mobilenetv3_small.yaml"), "--device", str(path)],
                                 capsys)
    check_user_error(code, err, "board.yaml")


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


def test_measured_table_covers_every_op_with_positive_timings():
    # Which of two tiny ops is slower is a property of the machine, not of this code: that comparison
    # is experiments/benchmarks/latency_width_kernel.py. Here, what holds on any machine.
    space = load_space(TINY)
    seed = space.seed_spec()
    big_k = seed.with_blocks([replace(b, k=7) for b in seed.blocks])
    ops = [op for s in (seed, big_k) for op in ops_of(s)]
    measured = measure_ops(ops, schedule=FAST, chunk=4)
    assert set(measured) == {op.key for op in ops}
    for t in measured.values():
        assert 0 < t.p10 <= t.median <= t.p90 and t.n == FAST.runs
    device = TableDevice("t", LatencyTable({"name": "t"}, measured, {"scale": 2.0, "offset_ms": 0.5}))
    ms, p10, p90 = device.predict_many([big_k])[0]
    assert ms == pytest.approx(2.0 * sum(measured[op.key].median for op in ops_of(big_k)) + 0.5)
    assert p10 == pytest.approx(2.0 * sum(measured[op.key].p10 for op in ops_of(big_k)) + 0.5) and p10 <= ms <= p90


def test_fit_scale_offset_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    sums = rng.uniform(1, 10, 20)
    fit = fit_scale_offset(sums, 1.17 * sums + 0.2)
    assert fit["scale"] == pytest.approx(1.17, abs=1e-5) and fit["offset_ms"] == pytest.approx(0.2, abs=1e-5)


class _FixedDevice:
    """A device whose predictions are given."""

    def __init__(self, predicted):
        self.predicted = np.array(predicted, dtype=float)

    def ensure(self, specs):
        return []

    def predict_many(self, specs):
        return np.c_[self.predicted, self.predicted, self.predicted]


def test_validate_statistics_are_computed_on_known_errors(monkeypatch):
    # predicted vs measured, chosen so that (p - m) / m is exact in floating point:
    # errors 0, +5, -5, +6.25, -10, +50 %  (two exactly on the 5% line, one on the 10% line)
    predicted = [10.0, 21.0, 38.0, 4.25, 45.0, 12.0]
    measured = [10.0, 20.0, 40.0, 4.0, 50.0, 8.0]
    noise = [1, 2, 3, 4, 5, 6]  # % each network's round medians stray from its overall median

    def fake_measure(specs, threads=1, schedule=None, progress=None, **kw):
        # 3 rounds of 4 runs: m, m - d, m + d; the overall median is m, the round deviations 0, d, d
        return [np.repeat([[m], [m - m * k / 100], [m + m * k / 100]], 4, axis=1) for m, k in zip(measured, noise)]

    monkeypatch.setattr("nas.latency.validate.measure_specs", fake_measure)
    specs = [replace(load_space(TINY).seed_spec(), name=f"n{i}") for i in range(6)]
    r = validate(_FixedDevice(predicted), specs)
    assert r["samples"] == 6
    assert r["within_5pct"] == 0.5  # 0, +5, -5 of six
    assert r["within_10pct"] == 0.8333  # and +6.25, -10: five of six, rounded to 4 digits
    assert r["median_abs_err_pct"] == 5.625  # |err| sorted 0 5 5 6.25 10 50: (5 + 6.25) / 2
    assert r["max_abs_err_pct"] == 50.0
    assert r["mean_err_pct"] == 7.708  # (0 + 5 - 5 + 6.25 - 10 + 50) / 6 = 7.7083
    # Ranks of measured 3 4 5 1 6 2, of predicted 2 4 5 1 6 3: sum d^2 = 2, rho = 1 - 6*2 / (6*35)
    assert r["spearman"] == 0.9429
    assert r["noise_pct"] == 3.5  # median of 1..6
    assert [row["measured_ms"] for row in r["rows"]] == measured
    assert [row["predicted_ms"] for row in r["rows"]] == predicted


def test_round_noise_is_the_median_round_deviation():
    runs = np.array([[10.0, 10.0, 10.0], [9.0, 9.0, 9.0], [10.0, 11.0, 12.0], [10.0, 10.0, 10.0]])
    # overall median 10; round medians 10, 9, 11, 10 -> deviations 0, 1, 1, 0 -> median 0.5 -> 5%
    assert round_noise_pct(runs) == pytest.approx(5.0)


def test_validate_command_on_a_lazily_filled_table(tmp_path, capsys):
    # An empty but calibrated table: validate measures just the ops of its samples, in this process.
    path = tmp_path / "host.yaml"
    table = load_host_table(1, path)
    table.calibration = {"scale": 1.0, "offset_ms": 0.0}
    table.save()
    rows = tmp_path / "rows.json"
    code, out, err = run_inprocess(["nas.latency", "validate", "--space", str(TINY), "--table", str(path),
                                    "--samples", "3", "--seed", "5", "--out", str(rows), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])
    for key in ("samples", "within_5pct", "within_10pct", "spearman", "median_abs_err_pct", "noise_pct"):
        assert key in result
    assert result["samples"] == 3 and result["seed"] == 5 and result["rows_file"] == str(rows)
    # The networks are the space's samples for that seed, in order; each was measured and predicted.
    rng = np.random.default_rng(5)
    space = load_space(TINY)
    sampled = [space.sample_spec(rng) for _ in range(3)]
    saved = json.loads(rows.read_text())["rows"]
    assert [row["arch"] for row in saved] == [spec.to_string() for spec in sampled]
    assert all(row["measured_ms"] > 0 and row["predicted_ms"] > 0 for row in saved)
    assert result["within_5pct"] in (0.0, 0.3333, 0.6667, 1.0)  # a count of 3, rounded to 4 digits
    assert {op.key for spec in sampled for op in ops_of(spec)} <= set(LatencyTable.load(path).ops)  # lazily filled


@pytest.mark.parametrize("text, needle", [("{not json", "not valid JSON"), ('{"entries": 3}', "entries"),
                                          ('{"entries": [{"key": "a", "median": -1}]}', "median")])
def test_bad_timings_files(tmp_path, capsys, text, needle):
    path = tmp_path / "timings.json"
    path.write_text(text)
    code, _, err = run_inprocess(["nas.latency", "import", "--device", "x", "--timings", str(path),
                                  "--out", str(tmp_path / "x.yaml")], capsys)
    check_user_error(code, err, "timings.json", needle)
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("args, needle", [
    (["build", "--device", "pixel1"], "--device"),
    (["validate", "--samples", "0"], "--samples"),
    (["validate", "--space", "nope"], "unknown search space"),
    (["import", "--device", "../x", "--timings", "t.json"], "--device"),
])
def test_bad_flags(capsys, args, needle):
    code, _, err = run_inprocess(["nas.latency", *args], capsys)
    check_user_error(code, err, needle)


@pytest.mark.parametrize("name, needle", [("host:int4", "unknown precision"), ("host-litert:fp16", "unknown precision")])
def test_bad_host_device_names(name, needle):
    with pytest.raises(UserError, match=needle):
        get_device(name)
