"""The audit's statistics and its resumable result cache (the end-to-end run is in test_proxies_cli)."""
import json
import math

import numpy as np
import pytest

from nas.audit.fidelity import AuditConfig, ResultCache, recommend, reference_ceiling, summarise
from nas.audit.population import sample_specs, stratified_specs
from nas.audit.published import predicted_latency_ms
from nas.audit.ranks import correlation, rank_values, tau_standard_error
from nas.runtime.errors import UserError


def test_sample_specs_are_distinct_and_repeatable():
    a = sample_specs("mobilenetv3_small", 5, seed=0)
    assert len({s.content_hash() for s in a}) == 5
    assert [s.content_hash() for s in sample_specs("mobilenetv3_small", 5, seed=0)] == [s.content_hash() for s in a]
    # A larger audit with the same seed extends a smaller one: its cached results are reused.
    assert [s.content_hash() for s in sample_specs("mobilenetv3_small", 8, seed=0)][:5] == [s.content_hash() for s in a]


def test_the_stratified_population_spans_the_space_evenly_in_log_latency():
    n = 10
    strat = stratified_specs("mobilenetv3_small", n, seed=0)
    assert len({s.content_hash() for s in strat}) == n
    assert [s.content_hash() for s in stratified_specs("mobilenetv3_small", n, seed=0)] == [s.content_hash() for s in strat]
    log_ms = np.log(predicted_latency_ms(strat))
    steps = np.diff(log_ms)
    assert np.all(steps > 0)  # from the small end to the large one, each step close to the even one
    assert np.all(np.abs(steps - steps.mean()) < 0.5 * steps.mean())
    random_ms = np.log(predicted_latency_ms(sample_specs("mobilenetv3_small", 200, seed=0)))
    assert log_ms.std() > 1.3 * random_ms.std()  # spread wider than random draws crowd
    assert log_ms[0] < np.percentile(random_ms, 5) and log_ms[-1] > np.percentile(random_ms, 95)


def test_a_population_the_space_cannot_fill_is_refused(tmp_path):
    from helpers import DATA

    tiny = str(DATA / "micro_space.yaml")
    with pytest.raises(UserError, match="fewer than 100000 distinct"):
        stratified_specs(tiny, 100000, seed=0, pool=1)
    with pytest.raises(UserError, match="^population: ") as err:
        AuditConfig(space=tiny, samples=3, budget=None, data=None, population="sorted")
    assert err.value.setting == "population"


def test_correlation_and_undefined_cases():
    tau, rho = correlation([1, 2, 3, 4], [10, 20, 30, 40])
    assert tau == pytest.approx(1.0) and rho == pytest.approx(1.0)
    assert correlation([1, 2, 3], [3, 2, 1])[0] == pytest.approx(-1.0)
    assert correlation([1, 1, 1], [1, 2, 3]) == (None, None)
    assert correlation([1], [1]) == (None, None)


def _tau_b_by_pairs(x, y):
    """Kendall's tau-b from its definition: (concordant - discordant) / sqrt((n0 - ties x)(n0 - ties y))."""
    c = d = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            sx, sy = (x[i] > x[j]) - (x[i] < x[j]), (y[i] > y[j]) - (y[i] < y[j])
            c, d = c + (sx * sy > 0), d + (sx * sy < 0)
            tx, ty = tx + (sx == 0), ty + (sy == 0)
    n0 = len(x) * (len(x) - 1) // 2
    return (c - d) / math.sqrt((n0 - tx) * (n0 - ty))


@pytest.mark.parametrize("reference, scores, tau, rho", [
    # pairs 01 02 03 C, 13 D, 12 tied in x only, 23 tied in y only: (3 - 1) / sqrt(5 * 5)
    # (tau-a would be 2/6, tau-c 0.375); ranks 1 2.5 2.5 4 vs 1 4 2.5 2.5: rho = 2.25 / 4.5
    ([1, 2, 2, 3], [1, 3, 2, 2], 0.4, 0.5),
    # pair 01 tied in both, 03 13 23 C, 02 12 D: (3 - 2) / sqrt(5 * 5)
    # ranks 1.5 1.5 3 4 vs 2.5 2.5 1 4: rho = 1.5 / sqrt(4.5 * 4.5)
    ([1, 1, 2, 3], [2, 2, 1, 3], 0.2, 1 / 3),
    # no ties, one swap among 4: (5 - 1) / 6
    ([1, 2, 3, 4], [1, 3, 2, 4], 2 / 3, 0.8),
])
def test_correlation_values_by_hand(reference, scores, tau, rho):
    got_tau, got_rho = correlation(reference, scores)
    assert got_tau == pytest.approx(tau, abs=1e-12) and got_rho == pytest.approx(rho, abs=1e-12)
    assert _tau_b_by_pairs(reference, scores) == pytest.approx(tau, abs=1e-12)


def test_correlation_matches_the_definition_on_tied_rankings():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(3, 12))
        x, y = rng.integers(0, 4, n).tolist(), rng.integers(0, 4, n).tolist()  # many ties
        tau, _ = correlation(x, y)
        if tau is None:  # a constant side
            assert len(set(x)) < 2 or len(set(y)) < 2
            continue
        assert tau == pytest.approx(_tau_b_by_pairs(x, y), abs=1e-12)
        assert tau == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)


def test_summarise_tau_on_a_ranking_with_a_failure_and_ties():
    # reference accuracies 0.5 0.6 0.6 0.8; proxy scores 1, failed (ranks last), 3, 3
    rows = [{"reference": {"score": a, "accuracy": a, "seconds": 9.0}, "naswot": n}
            for a, n in [(0.5, {"score": 1.0, "seconds": 0.1}), (0.6, {"score": None, "failed": True}),
                         (0.6, {"score": 3.0, "seconds": 0.1}), (0.8, {"score": 3.0, "seconds": 0.1})]]
    summary = summarise(rows, ["naswot"], [True])
    # proxy values 1, 0 (below every score), 3, 3: pairs 02 03 13 C, 01 D, 12 tied in the
    # reference only, 23 tied in the scores only: (3 - 1) / sqrt(5 * 5)
    assert summary["kendall_tau"]["naswot"] == pytest.approx(0.4, abs=1e-12)
    assert summary["table"][0]["failed"] == 1 and summary["seconds"]["naswot"] == 0.1


def test_failed_scores_rank_last():
    results = [{"score": 5.0}, {"score": None, "failed": True}, {"score": -3.0}, None]
    values = rank_values(results)
    assert values[0] == 5.0 and values[2] == -3.0 and values[1] < -3.0 and values[3] < -3.0


def test_recommend_takes_the_cheapest_within_one_standard_error():
    n = 20
    se = tau_standard_error(n)
    table = [
        {"proxy": "train-2ep", "kendall_tau": 0.6, "seconds": 20.0},
        {"proxy": "train-1ep", "kendall_tau": 0.6 - se / 2, "seconds": 10.0},
        {"proxy": "naswot", "kendall_tau": 0.6 - 2 * se, "seconds": 0.1},
        {"proxy": "params", "kendall_tau": 0.7, "seconds": 0.0},  # a baseline: never recommended
    ]
    assert recommend(table, n) == "train-1ep"
    assert recommend([{"proxy": "zen", "kendall_tau": -0.2, "seconds": 0.1}], n) is None


def test_summarise_reports_every_proxy():
    rows = [{"reference": {"score": a, "accuracy": a, "seconds": 9.0},
             "naswot": {"score": s, "seconds": 0.1}, "params": {"score": p, "seconds": 0.0}}
            for a, s, p in [(0.5, 1.0, 3.0), (0.6, 2.0, 1.0), (0.7, 3.0, 2.0)]]
    summary = summarise(rows, ["naswot", "params"], [True, True])
    assert summary["kendall_tau"]["naswot"] == pytest.approx(1.0)
    assert summary["seconds"] == {"naswot": 0.1, "params": 0.0}
    assert summary["reference"]["accuracy_mean"] == pytest.approx(0.6)
    assert summary["recommended"] == "naswot"
    json.dumps(summary, allow_nan=False)


def test_partial_tau_at_equal_latency_separates_a_size_score_from_one_that_ranks_within_a_latency():
    # Accuracy = a trend on latency plus a part of its own; "macs" follows latency alone, "naswot" the
    # reference's own part: both rank well overall, only naswot at equal latency.
    rng = np.random.default_rng(3)
    ms = np.geomspace(8, 25, 16)
    own = rng.normal(size=16)
    acc = 0.85 + 0.01 * np.log(ms) + 0.002 * own
    rows = [{"latency_ms": float(m), "reference": {"score": float(a), "accuracy": float(a)},
             "macs": {"score": float(m) ** 1.3}, "naswot": {"score": float(a + 0.0003 * rng.normal())}}
            for m, a in zip(ms, acc)]
    summary = summarise(rows, ["macs", "naswot"], [True, True])
    assert summary["kendall_tau"]["macs"] > 0.3 and summary["kendall_tau"]["naswot"] > 0.8
    assert summary["partial_tau"]["macs"] == 0.0  # a function of latency alone
    assert summary["partial_tau"]["naswot"] > 0.6
    assert summary["latency_kendall_tau"] == pytest.approx(summary["kendall_tau"]["macs"])
    del rows[0]["latency_ms"]  # an older audit's rows: nothing to regress on
    assert summarise(rows, ["macs"], [True])["partial_tau"]["macs"] is None


def test_the_reference_ceiling_at_equal_latency():
    ms = [8.0, 10.0, 12.0, 14.0, 16.0, 18.0]
    trend = [0.80, 0.81, 0.82, 0.83, 0.84, 0.85]
    own = [0.006, -0.006, 0.006, -0.006, 0.006, -0.006]  # swaps each pair of neighbours
    # Seed 1 keeps the trend and flips each network's own part: overall they agree, at equal latency not.
    rows = [{"latency_ms": m, "reference_seeds": [{"score": t + o, "accuracy": t + o}, {"score": t - o, "accuracy": t - o}]}
            for m, t, o in zip(ms, trend, own)]
    ceiling = reference_ceiling(rows)
    assert ceiling["reference_ceiling_tau"] > 0.3
    assert ceiling["reference_partial_ceiling_tau"] < -0.5


def test_result_cache_survives_a_torn_line(tmp_path):
    path = tmp_path / "results.jsonl"
    cache = ResultCache(path)
    cache.put("abc", "naswot", "f1", {"score": 1.5})
    with open(path, "a") as f:
        f.write('{"arch_hash": "def", "proxy": "na')  # interrupted mid-write
    again = ResultCache(path)
    assert again.get("abc", "naswot", "f1") == {"score": 1.5}
    assert again.get("abc", "naswot", "other-fingerprint") is None
    again.put("def", "zen", "f1", {"score": 2.0})  # starts on a fresh line
    assert ResultCache(path).get("def", "zen", "f1") == {"score": 2.0}
    assert tau_standard_error(20) == pytest.approx(math.sqrt(2 * 45 / (9 * 20 * 19)))


# ---- cascades -------------------------------------------------------------------------------

class FakeProxy:
    """A proxy whose results are given: scores by architecture name."""

    def __init__(self, name, scores, cheap):
        self.name, self.scores, self.cheap, self.calls = name, scores, cheap, []

    def evaluate(self, spec):
        self.calls.append(spec.name)
        s = self.scores[spec.name]
        return {"proxy": self.name, "score": s, "accuracy": None if self.cheap else s, "seconds": 1.0,
                "failed": False}

    def fingerprint(self):
        return self.name


def test_cascade_trains_only_what_passes_the_screen():
    from dataclasses import replace

    from nas.accuracy.cascade import CascadeProxy
    from helpers.data import TINY

    specs = [replace(TINY, name=f"a{i}") for i in range(6)]
    zen = FakeProxy("zen", {"a0": 5, "a1": 1, "a2": 9, "a3": 0, "a4": 7, "a5": None}, cheap=True)
    train = FakeProxy("train", {"a0": 0.5, "a1": 0.4, "a2": 0.7, "a3": 0.2, "a4": 0.6, "a5": 0.9}, cheap=False)
    cascade = CascadeProxy(zen, train, keep=0.5, warmup=2)
    results = [cascade.evaluate(s) for s in specs]
    assert train.calls == ["a0", "a1", "a2", "a4"]  # a3 is below the running median, a5 has no score
    assert [r["screened"] for r in results] == [False, False, False, True, False, True]
    assert results[3]["accuracy"] == 0.4 and results[3]["seconds"] == 1.0  # the lowest trained accuracy
    assert results[2]["accuracy"] == 0.7 and results[2]["seconds"] == 2.0
    assert cascade.name == "zen>train"
    state = cascade.state_dict()
    again = CascadeProxy(zen, train, keep=0.5, warmup=2)
    again.load_state_dict(state)
    assert again.screen.seen == cascade.screen.seen and again.floor() == 0.4


def test_steady_state_cascade_scores():
    from nas.accuracy.cascade import steady_state

    cheap = [{"score": s, "seconds": 0.1} for s in (1, 2, 3, 4)]
    train = [{"accuracy": a, "seconds": 10.0} for a in (0.9, 0.5, 0.7, 0.6)]
    scores, seconds = steady_state(cheap, train, keep=0.5)
    assert scores == [0.6, 0.6, 0.7, 0.6] and seconds == pytest.approx(0.1 + 5.0)


def test_make_proxy_builds_cascades():
    from nas.runtime.errors import UserError
    from nas.accuracy import make_proxy
    from nas.accuracy.cascade import CascadeProxy

    proxy = make_proxy("zen>train", "smoke")
    assert isinstance(proxy, CascadeProxy) and proxy.name == "zen>train" and not proxy.cheap
    for bad in ("train>zen", "zen>naswot", "zen>train>train"):
        with pytest.raises(UserError, match="cascade"):
            make_proxy(bad)
