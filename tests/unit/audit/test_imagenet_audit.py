"""`python -m nas.proxies imagenet-audit`: its draw, its statistics on cases whose answer is known, one
tiny run end to end (resumed from its cache), and its bad flags (one line, exit status 2)."""
import json

import numpy as np
import pytest

from helpers import check_user_error, run_inprocess
from helpers.data import write_idx_dataset
from nas.audit import imagenet as ia
from nas.runtime.errors import UserError


# ---- the draw --------------------------------------------------------------------------------

def test_draw_is_seeded_repeatable_and_distinct():
    a = ia.draw(500, seed=0)
    assert a == ia.draw(500, seed=0)  # repeatable
    assert len(set(a)) == 500 and all(0 <= i < ia.ACCEL_NETWORKS for i in a)  # distinct records
    assert ia.draw(500, seed=1) != a  # the seed matters
    assert ia.draw(60, seed=0) == a[:60]  # the trained subset is the first M of the same draw
    assert ia.draw(ia.ACCEL_NETWORKS, seed=3) != list(range(ia.ACCEL_NETWORKS))  # shuffled, not in file order
    assert sorted(ia.draw(ia.ACCEL_NETWORKS, seed=3)) == list(range(ia.ACCEL_NETWORKS))
    with pytest.raises(UserError, match="^networks: ") as err:
        ia.draw(ia.ACCEL_NETWORKS + 1, seed=0)
    assert err.value.setting == "networks"


def test_the_records_are_as_many_as_the_flag_allows():
    from nas.groundtruth.records import accel_records

    assert len(accel_records()) == ia.ACCEL_NETWORKS


# ---- the statistics --------------------------------------------------------------------------

def _case(n=60, seed=0):
    """Top-1 that depends on latency and on something latency does not see."""
    rng = np.random.default_rng(seed)
    latency = np.exp(rng.uniform(np.log(20), np.log(170), n))
    hidden = rng.normal(0, 1, n)
    top1 = 50 + 3 * np.log(latency) + 2 * hidden
    return list(top1), list(latency), hidden


def _results(scores, seconds):
    return [{"score": float(s), "seconds": seconds, "failed": False} for s in scores]


@pytest.fixture(scope="module")
def summary():
    """The audit's summary of five proxies whose answers are known: the truth, its opposite, latency
    itself, the truth with a little noise (and cheapest), and a trained proxy on the first 20 networks."""
    top1, latency, hidden = _case()
    noisy = np.array(top1) + np.random.default_rng(1).normal(0, 0.05, len(top1))
    results = {"oracle": _results(top1, 2.0), "anti": _results(-np.array(top1), 2.0),
               "latency": _results(latency, 0.01), "noisy": _results(noisy, 0.001),
               "trained": _results(top1[:20], 30.0)}  # a trained proxy: the first M networks only
    s = ia.summarise(top1, latency, results, trained_networks=20)
    return s, {t["proxy"]: t for t in s["table"]}, results


def test_the_truth_and_its_opposite_rank_perfectly_both_ways(summary):
    s, rows, _ = summary
    assert rows["oracle"]["kendall_tau"] == pytest.approx(1) and rows["oracle"]["partial_tau"] == pytest.approx(1)
    assert rows["anti"]["kendall_tau"] == pytest.approx(-1) and rows["anti"]["partial_tau"] == pytest.approx(-1)
    assert rows["oracle"]["seconds"] == 2.0


def test_a_score_that_is_latency_ranks_as_latency_and_says_nothing_at_equal_latency(summary):
    s, rows, _ = summary
    assert rows["latency"]["partial_tau"] == 0
    assert rows["latency"]["kendall_tau"] == pytest.approx(s["latency_kendall_tau"])
    assert 0.2 < s["latency_kendall_tau"] < 0.9


def test_each_proxy_is_judged_on_its_own_n_with_the_noise_of_that_n(summary):
    from nas.audit.ranks import partial_tau_standard_error, tau_standard_error

    s, rows, _ = summary
    assert rows["oracle"]["n"] == 60 and rows["trained"]["n"] == 20
    assert rows["trained"]["tau_se"] == pytest.approx(tau_standard_error(20))
    assert rows["trained"]["partial_tau_se"] == pytest.approx(partial_tau_standard_error(20))
    assert [b["n"] for b in s["latency"]] == [60, 20] and all(b["partial_tau"] == 0 for b in s["latency"])


def test_every_proxy_is_judged_again_on_the_trained_networks(summary):
    s, _, results = summary
    assert s["subset_n"] == 20 and {t["n"] for t in s["subset"]} == {20}
    assert {t["proxy"] for t in s["subset"]} == {*results, "latency alone"}


def test_the_recommendation_is_the_cheapest_within_one_se_of_the_best_at_equal_latency(summary):
    s, rows, _ = summary
    assert rows["noisy"]["partial_tau"] > 1 - rows["oracle"]["partial_tau_se"]
    assert s["recommended"] == "noisy"


def test_a_hidden_quality_shows_at_equal_latency_and_a_missing_result_leaves_tau_undefined():
    top1, latency, hidden = _case(n=80, seed=2)
    s = ia.summarise(top1, latency, {"hidden": _results(hidden, 0.1),
                                     "gap": [None, *_results(hidden[1:], 0.1)]})
    rows = {t["proxy"]: t for t in s["table"]}
    # Latency explains part of top-1; what it does not see is what the partial tau rewards.
    assert rows["hidden"]["partial_tau"] > rows["hidden"]["kendall_tau"] > 0
    assert rows["gap"]["kendall_tau"] is None and rows["gap"]["missing"] == 1
    assert s["recommended"] == "hidden"
    assert ia.recommend_at_equal_latency([{**rows["hidden"], "partial_tau": 0.01}]) is None  # not above chance


def test_the_noise_ceiling_falls_with_the_noise():
    top1, latency, _ = _case(n=100)
    noise = ia.reference_noise(top1, latency, seed=0, repeats=5)
    assert noise["seeds"] == 3 and noise["sd_rms"] > 0 and 0 < noise["seed_pair_tau"] < 1
    assert 0 < noise["estimated_partial_ceiling_tau"] < noise["estimated_ceiling_tau"] < 1
    assert noise == ia.reference_noise(top1, latency, seed=0, repeats=5)  # seeded


# ---- the command -----------------------------------------------------------------------------

def test_a_tiny_run_end_to_end_resumes_from_its_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ia, "latency_tau_all_records", lambda device: 0.39)  # 3,110 latencies: not here
    data = write_idx_dataset(tmp_path / "fmnist", n=120)
    out = tmp_path / "out"
    argv = ["nas.proxies", "imagenet-audit", "--networks", "5", "--trained-networks", "0", "--proxies", "macs,params",
            "--data", str(data), "--out", str(out), "--threads", "1", "--no-progress", "--json"]
    code, stdout, err = run_inprocess(argv, capsys)
    assert code == 0, err
    r = json.loads(stdout.strip().splitlines()[-1])
    assert r["reference"] == ia.REFERENCE_LABEL and r["networks"] == 5 and r["proxies"] == ["macs", "params"]
    assert {t["proxy"]: t["n"] for t in r["table"]} == {"macs": 5, "params": 5}
    assert ia.REFERENCE_LABEL in (out / "imagenet_audit.md").read_text()
    saved = json.loads((out / "imagenet_audit.json").read_text())
    assert saved["summary"]["reference"] == ia.REFERENCE_LABEL and len(saved["rows"]) == 5
    assert [row["record"] for row in saved["rows"]] == ia.draw(5, 0)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 10
    code, stdout, err = run_inprocess(argv, capsys)  # again: every result from the cache
    assert code == 0, err
    assert (out / "results.jsonl").read_text().splitlines() == lines
    assert json.loads(stdout.strip().splitlines()[-1])["kendall_tau"] == r["kendall_tau"]


@pytest.mark.parametrize("args, flag", [
    (("--networks", "3"), "--networks"),
    (("--networks", "3111"), "--networks"),
    (("--networks", "many"), "--networks"),
    (("--trained-networks", "-1"), "--trained-networks"),
    (("--trained-networks", "2"), "--trained-networks"),
    (("--networks", "10", "--trained-networks", "11"), "--trained-networks"),
    (("--proxies", "naswot,oracle"), "--proxies"),
    (("--proxies", "train-0ep"), "--proxies"),
    (("--proxies", "train", "--trained-networks", "0"), "--trained-networks"),
    (("--seed", "-1"), "--seed"),
    (("--seed", str(2**32)), "--seed"),
    (("--jobs", "0"), "--jobs"),
    (("--jobs", "17"), "--jobs"),
    (("--threads", "0"), "--threads"),
    (("--budget", "huge"), "--budget"),
    (("--bogus",), "--bogus"),
])
def test_bad_flags_are_one_line_naming_the_flag(args, flag, capsys, tmp_path):
    code, _, err = run_inprocess(["nas.proxies", "imagenet-audit", "--out", str(tmp_path / "o"), *args], capsys)
    check_user_error(code, err, flag)
    assert not (tmp_path / "o").exists()  # refused before anything is written
