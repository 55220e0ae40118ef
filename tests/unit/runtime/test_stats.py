"""Seed statistics and the verdict: a difference inside the noise is indistinguishable; a large,
consistent one is not."""
import math

import pytest
from scipy import stats

from nas.runtime.stats import judge, paired_difference, seed_summary, verdict


def test_seed_summary_mean_and_sample_sd():
    s = seed_summary([0.80, 0.82, 0.84])
    assert s["mean"] == pytest.approx(0.82) and s["sd"] == pytest.approx(0.02) and s["n"] == 3
    assert seed_summary([0.7])["sd"] is None  # one seed has no spread to report
    with pytest.raises(ValueError):
        seed_summary([])


def test_paired_interval_matches_scipys_paired_t_test():
    a, b = [0.812, 0.820, 0.805, 0.831], [0.801, 0.815, 0.809, 0.812]
    d = paired_difference(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert d["mean"] == pytest.approx(sum(x - y for x, y in zip(a, b)) / 4)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert d["n"] == 4 and d["confidence"] == 0.95


def test_pairing_removes_what_the_seeds_share():
    # Seeds move both networks together (an easy or a hard data order); the paired difference sees
    # through it, where the two spreads alone would not.
    shared = [0.00, 0.03, -0.02]
    a = [0.85 + s for s in shared]
    b = [0.84 + s + e for s, e in zip(shared, (0.001, -0.001, 0.0))]
    d = paired_difference(a, b)
    assert judge(d) == "better" and d["ci_low"] > 0
    assert seed_summary(b)["sd"] > d["mean"]  # unpaired, the spread would swamp the 1-point gap


@pytest.mark.parametrize("a,b,word", [
    ([0.80, 0.81, 0.82], [0.79, 0.80, 0.805], "better"),          # +1.2 points, every seed agrees
    ([0.79, 0.80, 0.805], [0.80, 0.81, 0.82], "worse"),
    ([0.800, 0.812, 0.806], [0.804, 0.806, 0.809], "indistinguishable"),  # signs disagree
    ([0.80, 0.81], [0.90, 0.70], "indistinguishable"),           # a large mean inside larger noise
    ([0.81, 0.82, 0.815], [0.80, 0.80, 0.81], "indistinguishable"),  # +1.2 points, CI reaches just below 0
])
def test_judge(a, b, word):
    assert judge(paired_difference(a, b)) == word


def test_constant_differences_have_a_zero_width_interval():
    d = paired_difference([0.9, 0.8, 0.7], [0.89, 0.79, 0.69])
    assert d["ci_low"] == pytest.approx(0.01) and d["ci_high"] == pytest.approx(0.01)
    assert judge(d) == "better"


def test_one_pair_is_never_a_result():
    d = paired_difference([0.9], [0.5])
    assert d["ci_low"] is None and judge(d) == "indistinguishable"
    assert "single seed" in verdict("final", "base", d)
    with pytest.raises(ValueError):
        paired_difference([0.9, 0.8], [0.5])


def test_verdict_says_which_way_and_by_how_much():
    better = verdict("final", "mobilenetv3_large_x0.964", paired_difference([0.80, 0.81, 0.82], [0.79, 0.80, 0.805]), 50)
    assert better.startswith("final is better than mobilenetv3_large_x0.964 at 50 ms by 1.17 points (95% CI +")
    assert "3 seeds" in better
    worse = verdict("final", "b", paired_difference([0.79, 0.80, 0.805], [0.80, 0.81, 0.82]))
    assert "worse than b at equal latency by 1.17 points" in worse
    same = verdict("final", "b", paired_difference([0.800, 0.812, 0.806], [0.804, 0.806, 0.809]))
    assert "indistinguishable from b" in same and "-0.03 points" in same
    assert not any(math.isnan(x) for x in paired_difference([0.8, 0.8], [0.8, 0.8]).values() if isinstance(x, float))
