"""The few-shot calibration benchmark's pure helpers, on tiny synthetic examples (no device, no timing)."""
import importlib.util
import numpy as np
import pytest

from helpers import ROOT

SCRIPT = ROOT / "experiments/benchmarks/fewshot_calibration.py"


@pytest.fixture(scope="module")
def fs():
    spec = importlib.util.spec_from_file_location("fewshot_calibration", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_error_summary_percentages_and_tau(fs):
    truth = [10.0, 20.0, 40.0, 80.0, 100.0]
    pred = [11.0, 19.0, 40.0, 88.0, 50.0]  # +10%, -5%, 0%, +10%, -50%; the last two swap places
    s = fs.error_summary(pred, truth)
    assert s["median_ape"] == pytest.approx(10.0)
    assert s["p90_ape"] == pytest.approx(10.0 + 0.6 * 40.0)  # numpy's linear quantile between 10 and 50
    assert s["tau"] == pytest.approx(0.8)  # 9 concordant pairs of 10, 1 discordant
    perfect = fs.error_summary([2 * t for t in truth], truth)
    assert perfect["median_ape"] == pytest.approx(100.0) and perfect["tau"] == pytest.approx(1.0)


def test_spread_skips_missing_fits_and_formats(fs):
    assert fs.spread([float("nan")] * 3) is None
    m, lo, hi = fs.spread([float("nan")] + list(range(11)))
    assert (m, lo, hi) == pytest.approx((5.0, 1.0, 9.0))
    assert fs.fmt_spread((5.0, 1.0, 9.0)) == "5.0 [1.0, 9.0]"
    assert fs.fmt_spread((0.959, 0.9591, 0.9589), 3) == "0.959"  # repeats that agree print one number
    assert fs.fmt_spread(None) == "–"


def test_rescale_minimises_relative_error(fs):
    base = np.array([1.0, 2.0, 4.0])
    assert fs.fit_rescale(base, 3 * base) == pytest.approx(3.0)
