"""The audit's reference at several seeds (the mean, the seed-to-seed ceiling) and its resume, with the
published ranking, on fake proxies whose results are functions of the architecture and the seed."""
import hashlib
import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from nas.audit import fidelity as audit_module
from nas.audit.fidelity import (AuditConfig, ResultCache, combine_seeds, reference_ceiling, reference_proxies,
                               run_audit)
from nas.audit.population import sample_specs
from nas.audit.fidelity_report import markdown_table
from nas.accuracy.proxy_config import DataConfig
from nas.accuracy.proxy import TrainingProxy, ZeroCostScorer
from nas.budgets import get_budget
from nas.runtime.errors import UserError
from helpers.data import one_torch_thread  # noqa: F401 (autouse fixture)


def _unit(*parts) -> float:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16) / 16**8


class Calls:
    def __init__(self):
        self.log, self.fail_after = [], None

    def record(self, what):
        if self.fail_after is not None and len(self.log) >= self.fail_after:
            raise KeyboardInterrupt  # the audit is stopped here
        self.log.append(what)


def install_fakes(monkeypatch) -> Calls:
    """Training proxies and zero-cost scorers replaced by functions of the architecture and the seed."""
    calls = Calls()

    def train(self, spec):
        calls.record((self.name, self.config.seed, spec.content_hash()))
        acc = _unit(spec.content_hash(), self.name, self.config.seed)
        return {"proxy": self.name, "score": acc, "accuracy": acc, "seconds": 1.0, "failed": False}

    def score(self, spec):
        calls.record((self.name, spec.content_hash()))
        return {"proxy": self.name, "score": _unit(spec.content_hash(), self.name), "accuracy": None,
                "seconds": 0.1, "failed": False}

    monkeypatch.setattr(TrainingProxy, "evaluate", train)
    monkeypatch.setattr(ZeroCostScorer, "evaluate", score)
    return calls


@pytest.fixture
def fake(monkeypatch):
    return install_fakes(monkeypatch)


def _config(**changes):
    return AuditConfig(**{"space": "mobilenetv3_small", "samples": 4, "budget": get_budget("smoke").accuracy,
                          "data": DataConfig(), "supernet": False, **changes})


def _seed_rows(per_seed):
    """Rows whose reference seed s of architecture i has accuracy per_seed[s][i]."""
    return [{"reference_seeds": [{"score": seeds[i], "accuracy": seeds[i]} for seeds in per_seed]}
            for i in range(len(per_seed[0]))]


def test_ceiling_is_the_seed_to_seed_tau():
    assert reference_ceiling(_seed_rows([[1, 2, 3, 4], [1, 2, 3, 4]]))["reference_ceiling_tau"] == pytest.approx(1.0)
    # one swap among 4: (5 - 1) / 6
    assert reference_ceiling(_seed_rows([[1, 2, 3, 4], [1, 3, 2, 4]]))["reference_ceiling_tau"] == pytest.approx(2 / 3)
    # three seeds: the mean over the pairs (0, 1) = 2/3, (0, 2) = 1, (1, 2) = 2/3
    three = reference_ceiling(_seed_rows([[1, 2, 3, 4], [1, 3, 2, 4], [1, 2, 3, 4]]))
    assert three["reference_seed_pair_taus"] == pytest.approx([2 / 3, 1.0, 2 / 3])
    assert three["reference_ceiling_tau"] == pytest.approx(7 / 9)
    assert reference_ceiling(_seed_rows([[1, 2, 3, 4]]))["reference_ceiling_tau"] is None
    assert reference_ceiling([{"reference": {"score": 1}}])["reference_ceiling_tau"] is None  # an old row


def test_the_half_ceiling_measures_how_the_means_of_two_halves_of_the_seeds_agree():
    from nas.audit.fidelity import half_ceiling

    agree = _seed_rows([[1, 2, 3, 4]] * 4)
    assert reference_ceiling(agree)["reference_half_ceiling_tau"] == pytest.approx(1.0)
    # Seeds 0, 1 against 2, 3 reverse the order (tau -1); the other two splits average to a constant
    # ranking, undefined, and are left out of the mean.
    split = _seed_rows([[1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1], [4, 3, 2, 1]])
    assert reference_ceiling(split)["reference_half_ceiling_tau"] == pytest.approx(-1.0)
    assert reference_ceiling(_seed_rows([[1, 2, 3, 4]] * 3))["reference_half_ceiling_tau"] is None
    rng = np.random.default_rng(1)
    runs = rng.normal(size=(5, 12))  # five seeds: halves of two, each split once
    rows = _seed_rows(runs.tolist())
    seeds = [row["reference_seeds"] for row in rows]
    assert -1 <= half_ceiling(seeds, 5) <= 1


def test_the_mean_ceiling_predicts_how_two_averaged_references_agree():
    from scipy.stats import kendalltau

    from nas.audit.fidelity import half_ceiling, mean_ceiling

    rng = np.random.default_rng(0)
    single, averaged, halves = [], [], []
    for _ in range(400):  # 20 networks; training noise as large as the networks' spread
        truth = rng.normal(size=20)
        runs = truth + rng.normal(size=(6, 20))
        single.append(kendalltau(runs[0], runs[1])[0])
        averaged.append(kendalltau(runs[:3].mean(0), runs[3:].mean(0))[0])
        if len(single) <= 100:  # the measured half ceiling of the same six seeds: the same quantity
            halves.append(half_ceiling([[{"accuracy": a} for a in col] for col in runs.T], 6))
    assert abs(np.mean(halves) - np.mean(averaged)) < 0.05
    assert np.mean(averaged) - np.mean(single) > 0.15  # averaging really helps, so the check can fail
    assert mean_ceiling(float(np.mean(single)), 3) == pytest.approx(np.mean(averaged), abs=0.03)
    assert mean_ceiling(0.5, 1) is None and mean_ceiling(-0.1, 2) is None and mean_ceiling(None, 2) is None
    assert mean_ceiling(1.0, 2) == pytest.approx(1.0)


def test_combined_reference_is_the_mean_over_seeds():
    both = combine_seeds([{"accuracy": 0.6, "seconds": 2.0, "failed": False},
                          {"accuracy": 0.8, "seconds": 3.0, "failed": False}])
    assert both["score"] == pytest.approx(0.7) and both["accuracy"] == pytest.approx(0.7)
    assert both["sd"] == pytest.approx(0.1414213562) and both["n"] == 2 and both["seconds"] == 5.0
    one_failed = combine_seeds([{"accuracy": 0.0, "failed": True}, {"accuracy": 0.8, "failed": False}])
    assert one_failed["score"] == pytest.approx(0.4) and not one_failed["failed"]
    assert combine_seeds([{"accuracy": 0.0, "failed": True}] * 2)["failed"]
    assert combine_seeds([{"accuracy": 0.5}, None]) is None


def test_reference_seeds_are_distinct_and_seed_zero_is_an_old_audits():
    config = _config(seed=3, reference_seeds=3)
    refs = reference_proxies(config)
    assert [r.config.seed for r in refs] == [3, 4, 5] and len({r.fingerprint() for r in refs}) == 3
    assert {r.name for r in refs} == {"reference"}
    with pytest.raises(UserError, match="^reference_seeds: ") as err:
        _config(reference_seeds=0)
    assert err.value.setting == "reference_seeds"


@pytest.fixture(scope="module")
def two_seed_audit(tmp_path_factory):
    """An audit at two reference seeds, with the published networks, stopped after 10 results, resumed
    to its end, then run again."""
    out = tmp_path_factory.mktemp("audit")
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake = install_fakes(monkeypatch)
        config = _config()
        specs = sample_specs(config.space, config.samples, config.seed)
        fake.fail_after = 10
        with pytest.raises(KeyboardInterrupt):
            run_audit(config, out, progress=False, specs=specs)
        done = list(fake.log)  # the calls before the stop
        fake.fail_after = None
        first = run_audit(config, out, progress=False, specs=specs)
        calls, lines = list(fake.log), (out / "results.jsonl").read_text().splitlines()
        again = run_audit(config, out, progress=False, specs=specs)
        return SimpleNamespace(done=done, first=first, calls=calls, lines=lines, again=again,
                               calls_again=fake.log[len(calls):],
                               lines_again=(out / "results.jsonl").read_text().splitlines())


def test_a_stopped_audit_resumes_without_computing_anything_twice(two_seed_audit):
    run = two_seed_audit
    assert not set(run.done) & set(run.calls[len(run.done):])  # nothing computed twice
    # 4 networks x (2 reference seeds + 2 trainings + 6 zero-cost) + 12 published x (1 training + 6 zero-cost)
    assert len(run.lines) == len(run.calls) == 4 * 10 + 12 * 7
    assert sorted({c[1] for c in run.calls if c[0] == "reference"}) == [0, 1]


def test_the_summary_has_the_seeds_mean_their_ceiling_and_the_published_ranking(two_seed_audit):
    summary = two_seed_audit.first["summary"]
    row = two_seed_audit.first["rows"][0]
    seeds = [r["accuracy"] for r in row["reference_seeds"]]
    assert row["reference"]["accuracy"] == pytest.approx(sum(seeds) / 2)
    assert summary["reference_seeds"] == [0, 1] and -1 <= summary["reference_ceiling_tau"] <= 1
    pub = summary["published"]
    assert pub["n"] == 12 and set(pub["kendall_tau"]) == {"train-1ep", "naswot", "synflow", "grad_norm", "zen",
                                                          "params", "macs"}
    assert set(pub["partial_tau"]) == set(pub["kendall_tau"]) and pub["tau_standard_error"] == pytest.approx(0.2210, abs=1e-4)
    assert [t for t in pub["kendall_tau"].values() if t is None or not -1 <= t <= 1] == []
    assert all(n["predicted_ms"] > 0 for n in pub["networks"])
    text = markdown_table(dict(summary, compute_s=1.0, wall_s=1.0))
    assert "Seed-to-seed Kendall tau" in text and "Against published ImageNet top-1 (12 networks" in text
    json.dumps(summary, allow_nan=False)


def test_a_finished_audit_run_again_computes_nothing_and_answers_the_same(two_seed_audit):
    run = two_seed_audit
    assert run.calls_again == [] and run.lines_again == run.lines
    summary, again = run.first["summary"], run.again["summary"]
    assert again["published"]["partial_tau"] == summary["published"]["partial_tau"]
    assert again["reference_ceiling_tau"] == summary["reference_ceiling_tau"]


def test_an_older_audits_results_load_as_reference_seed_zero(fake, tmp_path):
    config = _config(samples=3, published=False)
    specs = sample_specs(config.space, config.samples, config.seed)
    old = reference_proxies(_config(reference_seeds=1))[0]
    cache = ResultCache(tmp_path / "results.jsonl")  # what an audit of one seed wrote
    for s in specs:
        cache.put(s.content_hash(), "reference", old.fingerprint(),
                  {"proxy": "reference", "score": 0.5, "accuracy": 0.5, "seconds": 9.0, "failed": False})
    cache.close()
    result = run_audit(config, tmp_path, progress=False, specs=specs)
    assert sorted(c[1] for c in fake.log if c[0] == "reference") == [1, 1, 1]  # only the new seed trained
    assert [r["reference_seeds"][0]["accuracy"] for r in result["rows"]] == [0.5] * 3
    assert result["summary"]["published"] is None
    assert not [c for c in fake.log if len(c) == 2 and c[1] not in {s.content_hash() for s in specs}]


def test_published_ranking_uses_the_budgets_training_proxy():
    paper = _config(budget=get_budget("paper").accuracy, samples=3)  # its audit lengths include its 5 epochs
    proxies = audit_module.audit_proxies(paper.budget, paper.data)
    names = [p.name for p in audit_module.published_proxies(proxies, paper)]
    assert names == ["train-5ep", "naswot", "synflow", "grad_norm", "zen", "params", "macs"]
    odd = _config(budget=replace(get_budget("smoke").accuracy, audit_epochs=(2,)))  # no audit length is the budget's
    names = [p.name for p in audit_module.published_proxies(audit_module.audit_proxies(odd.budget, odd.data), odd)]
    assert names[0] == "train"


def test_audit_flags():
    from nas.proxies.__main__ import _parser

    args = _parser().parse_args(["audit", "--space", "mobilenetv3_small", "--samples", "3"])
    assert args.reference_seeds == 2 and args.published is True
    args = _parser().parse_args(["audit", "--space", "s", "--samples", "3", "--no-published", "--reference-seeds", "3"])
    assert args.reference_seeds == 3 and args.published is False


def test_a_bad_reference_seeds_flag_is_one_line(capsys):
    from helpers import check_user_error, run_inprocess

    code, _, err = run_inprocess(["nas.proxies", "audit", "--space", "mobilenetv3_small", "--samples", "3",
                                  "--reference-seeds", "0"], capsys)
    check_user_error(code, err, "--reference-seeds")


def test_the_supernet_is_trained_once_and_its_training_is_spread_over_the_networks(fake, tmp_path):
    """A real supernet of the tiny space (the other proxies are the fakes): trained once into OUT/supernet,
    each row's seconds are its score plus the training over N, and a resumed audit trains nothing."""
    from helpers import DATA
    from helpers.data import write_idx_dataset
    from nas.supernet.supernet_config import SupernetConfig

    data = DataConfig(path=str(write_idx_dataset(tmp_path / "fm", n=1200)))
    # A recipe of a few steps (the smoke budget's trains 64): what counts here is where the training
    # goes and that it happens once, not what it learns.
    recipe = SupernetConfig(epochs=1, train_images=128, val_images=64, batch_size=32, paths=2, bn_images=32)
    budget = replace(get_budget("smoke").accuracy, supernet=recipe)
    config = _config(space=str(DATA / "tiny_space.yaml"), samples=3, published=False, supernet=True, data=data,
                     budget=budget)
    first = run_audit(config, tmp_path / "audit", progress=False)["summary"]
    supernet = first["supernet"]
    assert supernet["training_s"] > 0 and (tmp_path / "audit" / "supernet" / "supernet.pt").is_file()
    rows = [json.loads(line)["result"] for line in (tmp_path / "audit" / "results.jsonl").read_text().splitlines()
            if json.loads(line)["proxy"] == "supernet"]
    assert len(rows) == 3 and all(r["seconds"] == pytest.approx(r["score_seconds"] + supernet["training_s"] / 3)
                                  for r in rows)
    assert first["kendall_tau"].get("supernet") is None or -1 <= first["kendall_tau"]["supernet"] <= 1
    assert {t["proxy"]: t["kind"] for t in first["table"]}["supernet"] == "supernet"
    stamp = (tmp_path / "audit" / "supernet" / "supernet.pt").stat().st_mtime_ns
    again = run_audit(config, tmp_path / "audit", progress=False)["summary"]
    assert (tmp_path / "audit" / "supernet" / "supernet.pt").stat().st_mtime_ns == stamp
    assert again["kendall_tau"] == first["kendall_tau"]
