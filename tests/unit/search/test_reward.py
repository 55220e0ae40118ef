import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.runtime.errors import UserError
from nas.search.reward import (Z90, RewardConfig, expected_mnasnet_reward, expected_tunas_reward, mnasnet_reward,
                        prob_over_target, tunas_reward)

acc = st.floats(0.0, 1.0)
lat = st.floats(0.1, 1000.0)
target = st.floats(1.0, 200.0)


# ---- the papers' numbers ---------------------------------------------------------------------

def test_mnasnet_soft_two_x_slower_needs_five_percent_more_accuracy():
    # MnasNet: with w = -0.07 a model 2x slower needs ~5% more relative accuracy for the same reward.
    assert mnasnet_reward(0.75, 100.0, 50.0) == pytest.approx(0.75 * 0.9526, abs=1e-4)
    slower_needs = 1 / 2 ** -0.07
    assert slower_needs == pytest.approx(1.0497, abs=1e-4)
    assert mnasnet_reward(0.75 * slower_needs, 100.0, 50.0) == pytest.approx(0.75)
    # ... and 2x faster is worth the same factor the other way.
    assert mnasnet_reward(0.75, 25.0, 50.0) == pytest.approx(0.75 * 2 ** 0.07)


def test_mobilenetv3_small_exponent():
    assert mnasnet_reward(0.6, 30.0, 15.0, -0.15, -0.15) == pytest.approx(0.6 * 0.9013, abs=1e-4)
    assert RewardConfig.soft(15.0, w=-0.15)(0.6, 30.0) == pytest.approx(0.6 * 2 ** -0.15)


def test_hard_constraint():
    # alpha = 0, beta = -1: ACC under the target, ACC * T / LAT over it.
    for latency in (1.0, 25.0, 49.99, 50.0):
        assert mnasnet_reward(0.7, latency, 50.0, 0.0, -1.0) == 0.7
    assert mnasnet_reward(0.7, 60.0, 50.0, 0.0, -1.0) == pytest.approx(0.7 * 50 / 60)
    assert mnasnet_reward(0.7, 100.0, 50.0, 0.0, -1.0) == pytest.approx(0.35)


@pytest.mark.parametrize("alpha,beta", [(-0.07, -0.07), (0.0, -1.0), (-0.15, -0.15), (-0.3, -0.9), (0.0, 0.0)])
def test_reward_at_target_is_accuracy(alpha, beta):
    assert mnasnet_reward(0.73, 42.0, 42.0, alpha, beta) == pytest.approx(0.73)


def test_tunas_reward_values():
    assert tunas_reward(0.7, 50.0, 50.0) == pytest.approx(0.7)
    assert tunas_reward(0.7, 55.0, 50.0) == pytest.approx(0.69)      # 10% over: -0.10 * 0.1
    assert tunas_reward(0.7, 45.0, 50.0) == pytest.approx(0.69)      # symmetric: 10% under costs the same
    assert tunas_reward(0.7, 100.0, 50.0) == pytest.approx(0.6)
    assert tunas_reward(-3.0, 75.0, 50.0, beta=-1.0) == pytest.approx(-3.5)  # signed scores are fine
    assert RewardConfig.tunas(50.0)(0.7, 55.0) == pytest.approx(0.69)


def test_vectorised_matches_scalar():
    accs, lats = np.array([0.5, 0.7, 0.9]), np.array([20.0, 50.0, 80.0])
    for fn, args in ((mnasnet_reward, (-0.07, -0.07)), (mnasnet_reward, (0.0, -1.0)), (tunas_reward, (-0.1,))):
        out = fn(accs, lats, 50.0, *args)
        assert isinstance(out, np.ndarray) and out.shape == (3,)
        np.testing.assert_allclose(out, [fn(a, l, 50.0, *args) for a, l in zip(accs, lats)])
    assert isinstance(mnasnet_reward(0.5, 20.0, 50.0), float)
    cfg = RewardConfig.hard(50.0)
    np.testing.assert_allclose(cfg.batch(accs, lats), [cfg(a, l) for a, l in zip(accs, lats)])


# ---- properties ------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(acc, lat, lat, target, st.sampled_from([(-0.07, -0.07), (0.0, -1.0), (-0.15, -0.15), (-0.2, -0.6)]))
def test_mnasnet_monotone_in_latency(a, l1, l2, t, ab):
    lo, hi = sorted((l1, l2))
    assert mnasnet_reward(a, lo, t, *ab) >= mnasnet_reward(a, hi, t, *ab) - 1e-12


@settings(max_examples=60, deadline=None)
@given(acc, acc, lat, target)
def test_monotone_in_accuracy(a1, a2, l, t):
    lo, hi = sorted((a1, a2))
    assert mnasnet_reward(lo, l, t) <= mnasnet_reward(hi, l, t)
    assert tunas_reward(lo, l, t) <= tunas_reward(hi, l, t)


@settings(max_examples=60, deadline=None)
@given(acc, st.floats(0.01, 0.99), target)
def test_tunas_penalises_distance_from_target(a, frac, t):
    near, far = t * (1 + frac / 2), t * (1 + frac)
    assert tunas_reward(a, near, t) > tunas_reward(a, far, t)
    assert tunas_reward(a, t * (1 - frac / 2), t) > tunas_reward(a, t * (1 - frac), t)


# ---- latency spread --------------------------------------------------------------------------

def _draw_latency(median, p10, p90, size, seed=0):
    """Monte Carlo from the two-piece lognormal the module fits (independent implementation)."""
    rng = np.random.default_rng(seed)
    z = np.abs(rng.standard_normal(size))
    lower = rng.random(size) < 0.5
    s_lo, s_hi = math.log(median / p10) / Z90, math.log(p90 / median) / Z90
    return median * np.exp(np.where(lower, -s_lo * z, s_hi * z))


def test_fitted_law_matches_quantiles_and_monte_carlo():
    median, p10, p90, t = 48.0, 44.0, 56.0, 50.0
    draws = _draw_latency(median, p10, p90, 400_000)
    np.testing.assert_allclose(np.quantile(draws, [0.1, 0.5, 0.9]), [p10, median, p90], rtol=3e-3)
    for alpha, beta in ((0.0, -1.0), (-0.07, -0.07), (-0.2, -0.5)):
        mc = mnasnet_reward(0.7, draws, t, alpha, beta).mean()
        assert expected_mnasnet_reward(0.7, median, p10, p90, t, alpha, beta) == pytest.approx(mc, rel=1e-3)
    mc = tunas_reward(0.7, draws, t).mean()
    assert expected_tunas_reward(0.7, median, p10, p90, t) == pytest.approx(mc, abs=1e-3)
    assert prob_over_target(median, p10, p90, t) == pytest.approx((draws > t).mean(), abs=3e-3)


def test_prob_over_target_at_the_quantiles():
    assert prob_over_target(50.0, 45.0, 58.0, 50.0) == pytest.approx(0.5)
    assert prob_over_target(50.0, 45.0, 58.0, 58.0) == pytest.approx(0.1)
    assert prob_over_target(50.0, 45.0, 58.0, 45.0) == pytest.approx(0.9)


def test_zero_spread_is_the_point_reward():
    for latency in (30.0, 50.0, 70.0):
        for ab in ((-0.07, -0.07), (0.0, -1.0)):
            assert expected_mnasnet_reward(0.7, latency, latency, latency, 50.0, *ab) == pytest.approx(
                mnasnet_reward(0.7, latency, 50.0, *ab), rel=1e-9)
        assert expected_tunas_reward(0.7, latency, latency, latency, 50.0) == pytest.approx(
            tunas_reward(0.7, latency, 50.0), abs=1e-9)


def test_a_latency_spread_costs_under_the_hard_reward():
    point_hard = mnasnet_reward(0.7, 49.0, 50.0, 0.0, -1.0)
    assert expected_mnasnet_reward(0.7, 49.0, 40.0, 65.0, 50.0, 0.0, -1.0) < point_hard - 0.01


def test_under_the_soft_reward_a_symmetric_spread_costs_nothing_and_a_right_skew_counts_as_slower():
    # Symmetric in log-latency: the point reward.
    assert expected_mnasnet_reward(0.7, 49.0, 49.0 / 1.3, 49.0 * 1.3, 50.0) == pytest.approx(
        mnasnet_reward(0.7, 49.0, 50.0), rel=1e-3)
    assert expected_mnasnet_reward(0.7, 49.0, 40.0, 65.0, 50.0) < mnasnet_reward(0.7, 49.0, 50.0)


def test_a_latency_spread_costs_under_the_tunas_reward():
    assert expected_tunas_reward(0.7, 50.0, 45.0, 56.0, 50.0) < 0.7 - 0.005


def test_more_spread_costs_more():
    assert (expected_mnasnet_reward(0.7, 49.0, 30.0, 80.0, 50.0, 0.0, -1.0)
            < expected_mnasnet_reward(0.7, 49.0, 40.0, 65.0, 50.0, 0.0, -1.0))


def test_config_variance_aware_and_overrun_penalty():
    plain = RewardConfig.hard(50.0)
    aware = RewardConfig.hard(50.0, variance_aware=True)
    penal = RewardConfig.hard(50.0, variance_aware=True, overrun_penalty=0.2)
    assert plain(0.7, 49.0, 40.0, 65.0) == 0.7                       # spread ignored unless asked
    assert aware(0.7, 49.0) == 0.7                                    # no spread given: point reward
    expected = expected_mnasnet_reward(0.7, 49.0, 40.0, 65.0, 50.0, 0.0, -1.0)
    assert aware(0.7, 49.0, 40.0, 65.0) == pytest.approx(expected)
    assert penal(0.7, 49.0, 40.0, 65.0) == pytest.approx(expected - 0.2 * prob_over_target(49.0, 40.0, 65.0, 50.0))
    tunas = RewardConfig.tunas(50.0, variance_aware=True)
    assert tunas(0.7, 50.0, 45.0, 56.0) == pytest.approx(expected_tunas_reward(0.7, 50.0, 45.0, 56.0, 50.0))
    with pytest.raises(UserError, match="p10"):
        aware(0.7, 49.0, 40.0, None)
    with pytest.raises(UserError, match="p10"):
        aware(0.7, 49.0, 50.0, 65.0)                                  # p10 above the median


# ---- configuration ---------------------------------------------------------------------------

def test_config_constructors_and_defaults():
    assert RewardConfig(target_ms=50).to_dict() == {"target_ms": 50.0, "kind": "mnasnet", "alpha": -0.07,
                                                    "beta": -0.07, "variance_aware": False, "overrun_penalty": 0.0}
    hard = RewardConfig.hard(50.0)
    assert (hard.alpha, hard.beta) == (0.0, -1.0)
    assert RewardConfig.soft(20.0, -0.15).beta == -0.15
    assert RewardConfig(kind="tunas", target_ms=50).beta == -0.10
    assert RewardConfig.from_dict({"target_ms": 15, "alpha": -0.15, "beta": -0.15}) == RewardConfig.soft(15, -0.15)
    assert RewardConfig.from_dict(hard.to_dict()) == hard


@pytest.mark.parametrize("kwargs,field", [
    ({"target_ms": 0}, "target_ms"),
    ({"target_ms": -5}, "target_ms"),
    ({"target_ms": float("nan")}, "target_ms"),
    ({"target_ms": float("inf")}, "target_ms"),
    ({"target_ms": "50"}, "target_ms"),
    ({"target_ms": True}, "target_ms"),
    ({"target_ms": 50, "kind": "nasnet"}, "kind"),
    ({"target_ms": 50, "alpha": 0.1}, "alpha"),
    ({"target_ms": 50, "beta": float("nan")}, "beta"),
    ({"target_ms": 50, "kind": "tunas", "alpha": -0.07}, "alpha"),
    ({"target_ms": 50, "overrun_penalty": -1}, "overrun_penalty"),
    ({"target_ms": 50, "variance_aware": "yes"}, "variance_aware"),
    ({"target_ms": 50, "alpha": "steep"}, "alpha"),
    ({"target_ms": 50, "overrun_penalty": None}, "overrun_penalty"),
])
def test_config_validation(kwargs, field):
    with pytest.raises(UserError) as err:
        RewardConfig(**kwargs)
    assert err.value.field == field


def test_from_dict_names_the_file():
    with pytest.raises(UserError, match=r"run\.yaml: reward: unknown key\(s\) gamma"):
        RewardConfig.from_dict({"target_ms": 50, "gamma": 1}, source="run.yaml")
    with pytest.raises(UserError, match="run.yaml"):
        RewardConfig.from_dict({"kind": "tunas"}, source="run.yaml")
    with pytest.raises(UserError, match="run.yaml.*target_ms"):
        RewardConfig.from_dict({"target_ms": -1}, source="run.yaml")


@pytest.mark.parametrize("args,field", [
    ((float("nan"), 50.0), "accuracy"),
    ((-0.1, 50.0), "accuracy"),          # a negative score would make the reward favour slow models
    ((0.7, 0.0), "latency_ms"),
    ((0.7, float("nan")), "latency_ms"),
    ((None, 50.0), "accuracy"),
])
def test_inputs_validated(args, field):
    with pytest.raises(UserError) as err:
        RewardConfig.soft(50.0)(*args)
    assert err.value.field == field


def test_call_takes_scalars():
    with pytest.raises(UserError, match="batch"):
        RewardConfig.soft(50.0)([0.5, 0.6], [40.0, 60.0])
