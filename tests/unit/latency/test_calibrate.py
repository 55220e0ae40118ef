"""Calibrated devices: the fit recovers known costs, predictions behave physically, the shipped
pixel1 device matches the paper, and bad measurement files are one-line user errors."""
import json
import math
import re
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from helpers import REFERENCE, ROOT, check_user_error, run_inprocess
from nas.runtime.errors import UserError
from nas.latency.calibrated import CalibratedDevice, load_calibrated_device
from nas.latency.features import FEATURE_NAMES, feature_matrix
from nas.latency.fit import MODELS, calibrate
from nas.latency.measurements import load_measurements
from nas.core.spec import scale_width
from nas.core.spec_file import load_spec

PUBLISHED = ROOT / "latency_tables" / "pixel1_published.yaml"
SHIPPED = ROOT / "latency_tables" / "pixel1.yaml"
NAMES = ["mobilenetv3_large", "mobilenetv3_small", "mnasnet_a1", "mnasnet_small", "mobilenetv2_100",
         "proxylessnas_mobile", "mobilenetv3_large_minimalistic", "mobilenetv3_small_minimalistic"]


@pytest.fixture(scope="module")
def synthetic_specs():
    base = [load_spec(REFERENCE / f"{n}.yaml") for n in NAMES]
    return base + [scale_width(base[0], 1.25), scale_width(base[1], 0.5), scale_width(base[5], 0.75)]


@pytest.mark.parametrize("model", list(MODELS))
def test_fit_recovers_known_coefficients(model, synthetic_specs):
    features = MODELS[model]
    known = np.linspace(0.2, 1.4, len(features))
    ms = feature_matrix(synthetic_specs, features) @ known
    fit, fits = calibrate(synthetic_specs, ms, model)
    assert fit.model == model and len(fits) == 1
    np.testing.assert_allclose(fit.coef, known, rtol=1e-6)
    assert fit.loo_max_pct < 1e-4  # exact data: every held-out network is predicted exactly


def _nnls_relative(x, ms):
    """The fit, solved another way: bounded least squares on rows scaled by 1 / ms (no column scaling)."""
    return lsq_linear(x / ms[:, None], np.ones(len(ms)), bounds=(0, np.inf), method="bvls", tol=1e-14).x


def _loo_by_hand(x, ms):
    """Refit without network i, predict network i."""
    return np.array([x[i] @ _nnls_relative(np.delete(x, i, axis=0), np.delete(ms, i)) for i in range(len(ms))])


def test_leave_one_out_holds_each_network_out_on_noisy_data(synthetic_specs):
    features = MODELS["macs_se"]
    x = feature_matrix(synthetic_specs, features)
    noise = np.random.default_rng(7).uniform(-0.08, 0.08, len(synthetic_specs))
    ms = x @ np.array([0.2, 0.4, 7.0, 0.2]) * (1 + noise)  # the true costs, timed with +-8% noise
    fit, _ = calibrate(synthetic_specs, ms, "macs_se")
    np.testing.assert_allclose(fit.coef, _nnls_relative(x, ms), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(fit.fitted, x @ _nnls_relative(x, ms), rtol=1e-9)
    loo = _loo_by_hand(x, ms)
    np.testing.assert_allclose(fit.loo, loo, rtol=1e-6)
    in_sample_rms = np.sqrt(np.mean((fit.fitted / ms - 1) ** 2)) * 100
    # A network the fit has not seen is predicted worse than one it was fitted to.
    assert fit.loo_rms_pct > in_sample_rms * 1.05
    assert fit.loo_rms_pct == pytest.approx(np.sqrt(np.mean((loo / ms - 1) ** 2)) * 100, rel=1e-6)
    assert fit.loo_median_pct == pytest.approx(np.median(np.abs(loo / ms - 1)) * 100, rel=1e-6)
    assert fit.loo_max_pct == pytest.approx(np.max(np.abs(loo / ms - 1)) * 100, rel=1e-6)


def test_auto_picks_lowest_leave_one_out_error(synthetic_specs):
    ms = feature_matrix(synthetic_specs, MODELS["macs_se"]) @ np.array([0.2, 0.4, 7.0, 0.2])
    fit, fits = calibrate(synthetic_specs, ms)
    assert {f.model for f in fits} == set(MODELS)
    # Models that contain the true one fit exactly too; the tie goes to the simplest.
    assert fit.model == "macs_se" and fit.loo_max_pct < 1e-4
    assert all(f.loo_rms_pct > 1 for f in fits if "se_elements" not in f.features)


def test_too_few_networks_is_a_user_error(synthetic_specs):
    ms = np.full(4, 10.0)
    with pytest.raises(UserError, match="at least 5"):
        calibrate(synthetic_specs[:4], ms)


@pytest.fixture(scope="module")
def pixel1() -> CalibratedDevice:
    return load_calibrated_device(SHIPPED)


def test_pixel1_grows_with_width_and_kernel(pixel1):
    spec = load_spec(REFERENCE / "mobilenetv3_large.yaml")
    assert pixel1.predict(scale_width(spec, 1.25)).ms > pixel1.predict(spec).ms
    blocks = list(spec.blocks)
    assert blocks[2].k == 3
    blocks[2] = replace(blocks[2], k=5)
    assert pixel1.predict(spec.with_blocks(blocks)).ms > pixel1.predict(spec).ms
    assert all(c >= 0 for c in pixel1.coef) and pixel1.coef[pixel1.features.index("dw_macs")] > 0


def test_pixel1_is_deterministic_and_matches_the_paper(pixel1):
    spec = load_spec(REFERENCE / "mobilenetv3_large.yaml")
    first, second = pixel1.predict(spec), pixel1.predict(spec)
    assert first == second
    assert abs(first.ms / 51.0 - 1) <= 0.04
    assert first.p10 <= first.ms <= first.p90
    many = pixel1.predict_many([spec, scale_width(spec, 0.75)])
    assert many.shape == (2, 3) and many[0, 0] == first.ms
    assert pixel1.info["loo"]["median_abs_err_pct"] <= 4 and pixel1.info["loo"]["max_abs_err_pct"] <= 16


def test_truncated_or_corrupt_device_file(tmp_path):
    lines = SHIPPED.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.yaml"
    cut.write_text("".join(lines[:-3]))
    with pytest.raises(UserError, match="cut.yaml.*n_networks"):
        load_calibrated_device(cut)
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHIPPED.read_text().replace('"dw_macs": 0.', '"dw_macs": -0.'))
    with pytest.raises(UserError, match="bad.yaml.*coefficients.dw_macs"):
        load_calibrated_device(bad)
    zero = tmp_path / "zero.yaml"  # every coefficient 0: refused by name, not later as a reward's problem
    zero.write_text("".join(re.sub(r'(": )[0-9.eE+-]+', r"\g<1>0.0", line) if line.startswith("coefficients:")
                            else line for line in lines))
    with pytest.raises(UserError, match="zero.yaml.*coefficients.*all 0"):
        load_calibrated_device(zero)
    odd = tmp_path / "odd.yaml"
    odd.write_text(SHIPPED.read_text().replace('features: ["', 'features: [{a: 1}, "', 1))
    with pytest.raises(UserError, match=r"odd.yaml.*features\[0\]"):  # a mapping, not a name: no traceback
        load_calibrated_device(odd)


@pytest.fixture(scope="module")
def fit_by_hand():
    """The published Pixel-1 file fitted here: every model fitted and held out by hand, the lowest RMS
    wins. Its name, coefficients and held-out relative errors."""
    _, rows = load_measurements(PUBLISHED)
    ms = np.array([m.ms for m in rows])
    x_all = feature_matrix([m.spec for m in rows], FEATURE_NAMES)
    by_hand = {}
    for name, features in MODELS.items():
        x = x_all[:, [FEATURE_NAMES.index(f) for f in features]]
        loo_rel = _loo_by_hand(x, ms) / ms - 1
        by_hand[name] = (np.sqrt(np.mean(loo_rel ** 2)), _nnls_relative(x, ms), loo_rel)
    model = min(by_hand, key=lambda m: by_hand[m][0])
    _, coef, loo_rel = by_hand[model]
    return model, coef, loo_rel


def test_cli_calibrates_the_published_file(tmp_path, capsys, fit_by_hand):
    out = tmp_path / "p1.yaml"
    code, stdout, err = run_inprocess(["nas.latency", "calibrate", "--device", "p1", "--measurements",
                                       str(PUBLISHED), "--out", str(out), "--json"], capsys)
    assert code == 0, err
    r = json.loads(stdout.strip().splitlines()[-1])
    for key in ("device", "model", "coefficients", "loo_median_abs_err_pct", "loo_max_abs_err_pct", "networks"):
        assert key in r
    assert len(r["networks"]) == 11 and r["loo_median_abs_err_pct"] <= 4 and r["loo_max_abs_err_pct"] <= 16
    # The same answer worked out here.
    model, coef, loo_rel = fit_by_hand
    assert r["model"] == model
    assert set(r["coefficients"]) == set(MODELS[model])
    np.testing.assert_allclose([r["coefficients"][f] for f in MODELS[model]], coef, rtol=1e-6, atol=1e-12)
    assert r["loo_median_abs_err_pct"] == pytest.approx(np.median(np.abs(loo_rel)) * 100, abs=1e-3)
    assert r["loo_max_abs_err_pct"] == pytest.approx(np.max(np.abs(loo_rel)) * 100, abs=1e-3)
    fitted = load_calibrated_device(out)
    assert fitted.name == "p1" and tuple(fitted.features) == MODELS[model]
    assert [p.name for p in tmp_path.iterdir()] == ["p1.yaml"]


def test_the_shipped_pixel1_device_is_the_fit_of_the_published_file(fit_by_hand):
    """Not stale: refitting the file it was fitted to gives it again."""
    model, coef, loo_rel = fit_by_hand
    shipped = load_calibrated_device(SHIPPED)
    assert shipped.info["model"] == model
    np.testing.assert_allclose(shipped.coef, coef, rtol=1e-6, atol=1e-12)
    assert shipped.info["loo"]["max_abs_err_pct"] == pytest.approx(np.max(np.abs(loo_rel)) * 100, abs=1e-3)


def test_csv_measurements(tmp_path):
    rows = ["spec,ms,source"] + [f"search_spaces/reference/{n}.yaml,{10 + i},bench" for i, n in enumerate(NAMES)]
    path = tmp_path / "m.csv"
    path.write_text("\n".join(rows) + "\n")
    device, ms = load_measurements(path)
    assert device == {} and [m.ms for m in ms] == [10.0 + i for i in range(len(NAMES))]


GOOD_ROW = "  - {spec: search_spaces/reference/mobilenetv3_large.yaml, ms: 51.0}\n"


def _rows(*names: str, ms: str = "20.0") -> str:
    return "".join(f"  - {{spec: search_spaces/reference/{n}.yaml, ms: {ms}}}\n" for n in names)


BAD_FILES = {
    "missing_spec.yaml": ("measurements:\n  - {spec: search_spaces/reference/nope.yaml, ms: 3}\n",
                          "measurements[0].spec"),
    "zero_ms.yaml": ("measurements:\n" + GOOD_ROW + _rows("mnasnet_a1", ms="0"), "measurements[1].ms"),
    "nan_ms.yaml": ("measurements:\n" + _rows("mnasnet_a1", ms=".nan"), "measurements[0].ms"),
    "duplicate.yaml": ("measurements:\n" + GOOD_ROW + GOOD_ROW, "measurements[1].spec"),
    "too_few.yaml": ("measurements:\n" + _rows(*NAMES[:4]), "at least 5"),
    "no_rows.yaml": ("device: {name: x}\n", "measurements"),
    "header_only.csv": ("spec,ms\n", "measurements"),
    "bad_ms.csv": ("spec,ms\nsearch_spaces/reference/mnasnet_a1.yaml,fast\n", "measurements[0].ms"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_measurement_files(name, tmp_path):
    text, needle = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserError) as err:
        device, rows = load_measurements(path)
        calibrate([m.spec for m in rows], [m.ms for m in rows], source=str(path))
    message = str(err.value)
    assert name in message and needle in message and "\n" not in message


def test_cli_bad_measurement_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "nan_ms.yaml"
    path.write_text(BAD_FILES["nan_ms.yaml"][0])
    code, _, err = run_inprocess(["nas.latency", "calibrate", "--device", "x", "--measurements", str(path),
                                  "--out", str(tmp_path / "x.yaml")], capsys)
    check_user_error(code, err, "nan_ms.yaml", "measurements[0].ms")
    assert not (tmp_path / "x.yaml").exists()


def test_pixel1_prediction_is_finite_for_odd_geometry(pixel1):
    spec = load_spec(REFERENCE / "mobilenetv3_small.yaml")
    odd = replace(spec, resolution=97, blocks=tuple(replace(b, k=7) for b in spec.blocks))
    p = pixel1.predict(odd)
    assert math.isfinite(p.ms) and 0 < p.ms < pixel1.predict(replace(odd, resolution=224)).ms


@pytest.mark.parametrize("phone, fitted_within, loo_median, loo_max", [("pixel2", 0.02, 2, 8), ("pixel3", 0.14, 4, 26)])
def test_pixel2_and_pixel3_predict_table_3_and_are_not_stale(phone, fitted_within, loo_median, loo_max):
    from nas.latency.devices import get_device

    _, rows = load_measurements(ROOT / "latency_tables" / f"{phone}_published.yaml")
    assert len(rows) == 9  # Table 3's networks: the only ones with Pixel 2 and 3 figures
    device = get_device(phone)
    for m in rows:
        assert abs(device.predict(m.spec).ms / m.ms - 1) <= fitted_within, m.network
    refit, _ = calibrate([m.spec for m in rows], np.array([m.ms for m in rows]))
    assert device.info["model"] == refit.model
    np.testing.assert_allclose(device.coef, refit.coef, rtol=1e-6, atol=1e-12)
    assert device.info["loo"]["median_abs_err_pct"] <= loo_median and device.info["loo"]["max_abs_err_pct"] <= loo_max
    # The phones differ: the same network is slower on the Pixel 2 than on the Pixel 1, faster on the 3.
    large = load_spec(REFERENCE / "mobilenetv3_large.yaml")
    p1 = get_device("pixel1").predict(large).ms
    assert (device.predict(large).ms > p1) == (phone == "pixel2")


def test_a_shipped_device_table_is_never_overwritten_or_shadowed_unasked(tmp_path, capsys, monkeypatch, caplog):
    from nas.latency.devices import TABLES_DIR, device_file

    shipped = TABLES_DIR / "pixel2.yaml"
    before = shipped.read_bytes()
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--out", str(shipped)]):  # the default ./latency_tables/pixel2.yaml, or the file itself
        code, _, err = run_inprocess(["nas.latency", "calibrate", "--device", "pixel2", "--measurements",
                                      str(PUBLISHED), *extra], capsys)
        assert code == 2 and "ships" in err and "--force" in err, err
    assert shipped.read_bytes() == before and not (tmp_path / "latency_tables").exists()
    code, _, err = run_inprocess(["nas.latency", "calibrate", "--device", "pixel2", "--measurements",
                                  str(PUBLISHED), "--force"], capsys)
    assert code == 0, err
    assert shipped.read_bytes() == before and (tmp_path / "latency_tables" / "pixel2.yaml").is_file()
    with caplog.at_level("WARNING"):  # the local table now stands in front of the shipped one: said so
        assert device_file("pixel2") == Path("latency_tables") / "pixel2.yaml"
    assert "replaces the shipped pixel2 device" in caplog.text
