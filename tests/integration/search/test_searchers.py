"""The ask/tell searchers, their checkpoints, and the Ray Tune Searcher around them."""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.search.controller import ControllerConfig
from nas.runtime.errors import UserError
from nas.latency.devices import get_device
from nas.search.reward import RewardConfig
from nas.search.search_loop import Evaluator, SearchRun
from nas.search.algorithms import (ALGORITHMS, ControllerSearch, RandomSearch, RegularizedEvolution, TuneSearcher,
                           load_state, make_algorithm, save_state)
from nas.core.space import load_space
from helpers import ROOT

TINY = ROOT / "tests" / "data" / "tiny_space.yaml"
OPTIONS = {"controller": {"batch_size": 8}, "tunas": {"batch_size": 8}, "random": {}, "evolution": {"population": 12, "tournament": 4},
           "ofa-evolution": {"population": 12, "feasible": lambda tokens: sum(tokens) % 3 != 0},
           "guided-evolution": {"start": 12, "batch": 8, "candidates": 200, "target_ms": 1.0,
                                "latency": lambda many: np.array([2.0 * (sum(t) % 3 == 0) for t in many])}}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # float reductions identical run to run
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small():
    return load_space("mobilenetv3_small")


def toy_reward(tokens) -> float:
    """Deterministic, with a unique best: every decision's last choice."""
    return float(np.mean([t == 0 for t in tokens[::2]] + [t == 1 for t in tokens[1::2]]))


def drive(algorithm, samples: int, batch: int, stop_at: int | None = None, told_in_last: int | None = None):
    """Ask a batch, tell it in index order; repeat. With stop_at, stop once that many were asked,
    after telling only `told_in_last` of the last batch. Returns every (index, tokens) asked."""
    asked = []
    while algorithm.told < samples:
        out = []
        while len(out) < batch and algorithm.told + len(out) < samples:
            s = algorithm.ask()
            if s is None:
                break
            out.append(s)
        assert out, "nothing to ask with all results in"
        asked += [(s.index, s.tokens) for s in out]
        if stop_at is not None and len(asked) >= stop_at:
            for s in out[:told_in_last]:
                algorithm.tell(s.index, toy_reward(s.tokens))
            return asked
        for s in out:
            algorithm.tell(s.index, toy_reward(s.tokens))
    return asked


# ---- save / restore ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_restore_continues_identically_with_outstanding_suggestions(name, small, tmp_path):
    samples, batch = 72, 8
    reference = drive(make_algorithm(name, small, seed=5, **OPTIONS[name]), samples, batch)
    assert [i for i, _ in reference] == list(range(samples))

    first = make_algorithm(name, small, seed=5, **OPTIONS[name])
    head = drive(first, samples, batch, stop_at=40, told_in_last=3)   # 5 of the last batch outstanding
    assert len(first.outstanding) == 5
    save_state(first, tmp_path / "state.pkl")
    second = make_algorithm(name, small, seed=5, **OPTIONS[name])
    load_state(second, tmp_path / "state.pkl")
    assert second.pending_reissue == 5
    again = [second.ask() for _ in range(5)]     # the outstanding ones come back first, same number and tokens
    assert [(s.index, s.tokens) for s in again] == head[-5:]
    for s in again:
        second.tell(s.index, toy_reward(s.tokens))
    tail = drive(second, samples, batch)
    assert head + tail == reference


def test_restore_refuses_another_algorithm(small, tmp_path):
    save_state(make_algorithm("random", small), tmp_path / "s.pkl")
    with pytest.raises(UserError, match="random"):
        load_state(make_algorithm("evolution", small), tmp_path / "s.pkl")
    with pytest.raises(UserError, match="unknown algorithm"):
        make_algorithm("annealing", small)


def test_tell_twice_is_an_error(small):
    a = RandomSearch(small)
    s = a.ask()
    a.tell(s.index, 1.0)
    with pytest.raises(ValueError, match="not outstanding"):
        a.tell(s.index, 1.0)


# ---- random -----------------------------------------------------------------------------------

def test_random_is_seeded_and_uniform(small):
    a, b, c = RandomSearch(small, seed=1), RandomSearch(small, seed=1), RandomSearch(small, seed=2)
    ta = [a.ask().tokens for _ in range(3000)]
    assert ta[:50] == [b.ask().tokens for _ in range(50)]
    assert ta[:50] != [c.ask().tokens for _ in range(50)]
    counts = np.zeros((len(small.decisions), max(small.num_choices)))
    for tokens in ta:
        counts[np.arange(len(tokens)), tokens] += 1
    for d, n in enumerate(small.num_choices):
        freq = counts[d, :n] / len(ta)
        assert np.all(np.abs(freq - 1 / n) < 0.035), (small.decisions[d].name, freq)   # ~4 sd at n=3000


# ---- evolution --------------------------------------------------------------------------------

def test_evolution_mutates_exactly_one_decision(small):
    evo = RegularizedEvolution(small, seed=0, population=10, tournament=3)
    parent = tuple(small.seed_tokens())
    for _ in range(200):
        child = evo.mutate(parent)
        diff = [d for d, (x, y) in enumerate(zip(parent, child)) if x != y]
        assert len(diff) == 1 and 0 <= child[diff[0]] < small.num_choices[diff[0]]


def test_evolution_children_come_from_the_living_population(small):
    evo = RegularizedEvolution(small, seed=3, population=10, tournament=3)
    for k in range(120):
        s = evo.ask()
        if k >= 10:   # after the random start, a one-decision neighbour of a living member
            assert any(sum(x != y for x, y in zip(s.tokens, m)) == 1 for m, _ in evo.population)
        evo.tell(s.index, toy_reward(s.tokens))
        assert len(evo.population) <= 10
    assert np.mean([r for _, r in evo.population]) > 0.7   # selection pressure works


def test_evolution_random_start_is_exactly_the_population_and_then_waits(small):
    evo = RegularizedEvolution(small, seed=0, population=4, tournament=2)
    out = [evo.ask() for _ in range(4)]
    assert all(s is not None for s in out) and evo.ask() is None   # nothing told: no parent yet
    evo.tell(out[2].index, 0.5)
    child = evo.ask()
    assert sum(x != y for x, y in zip(child.tokens, out[2].tokens)) == 1


# ---- controller -------------------------------------------------------------------------------

def test_controller_batch_is_synchronous_and_resumes_mid_batch(small, tmp_path):
    c = ControllerSearch(small, seed=0, batch_size=4)
    batch = [c.ask() for _ in range(4)]
    assert c.ask() is None
    c.tell(batch[3].index, 0.2)
    c.tell(batch[0].index, 0.9)
    save_state(c, tmp_path / "c.pkl")
    d = ControllerSearch(small, seed=0, batch_size=4)
    load_state(d, tmp_path / "c.pkl")
    again = [d.ask(), d.ask()]
    assert [s.index for s in again] == [1, 2] and d.ask() is None
    for s in reversed(again):    # results in any order
        d.tell(s.index, 0.5)
    assert d.controller.updates == 1
    nxt = d.ask()
    assert nxt.index == 4 and d.batch_start == 4


def test_controller_raises_the_probability_of_rewarded_tokens(small):
    c = ControllerSearch(small, seed=0, batch_size=16)

    def p_rewarded():
        with torch.no_grad():
            probs = c.controller.probs([1 - (d % 2 == 0) for d in range(len(small.decisions))])
        return np.mean([p[0] if d % 2 == 0 else p[1] for d, p in enumerate(probs)])

    before = p_rewarded()
    drive(c, 16 * 12, 16)
    after = p_rewarded()
    assert c.controller.updates == 12
    assert after > before + 0.1, (before, after)


def test_controller_takes_a_config(small):
    cfg = ControllerConfig(hidden=16, algorithm="ppo", lr=0.01)
    c = make_algorithm("controller", small, seed=0, batch_size=4, config=cfg)
    assert c.controller.config == cfg and c.batch_size == 4


# ---- Ray Tune ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="ray_", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False, logging_level="ERROR")
    # Workers cannot import this test module: ship its trainables by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()
    import shutil
    shutil.rmtree(temp, ignore_errors=True)


def _toy_trainable(config):
    from ray import tune

    tune.report({"accuracy": toy_reward(config["tokens"])})


def test_tune_searcher_inside_a_real_tuner(local_ray, small, tmp_path):
    from ray import tune

    algorithm = make_algorithm("controller", small, seed=0, batch_size=4)
    seen = []

    def on_result(s, result, error):
        assert not error and result["accuracy"] == toy_reward(s.tokens)
        seen.append(s.index)
        return result["accuracy"]

    searcher = TuneSearcher(algorithm, on_result, limit=10, state_path=tmp_path / "state.pkl")
    grid = tune.Tuner(
        _toy_trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=50, metric="accuracy", mode="max",
                                    reuse_actors=True),
        run_config=tune.RunConfig(name="toy", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert len(grid) == 10 and not grid.errors           # the limit ends the search, not num_samples
    assert sorted(seen) == list(range(10)) and algorithm.told == 10
    assert algorithm.controller.updates == 2              # two whole batches of 4; the last 2 wait
    restored = make_algorithm("controller", small, seed=0, batch_size=4)
    load_state(restored, tmp_path / "state.pkl")
    assert restored.told == 10


def _flaky_trainable(config, marks):
    """Index % 3 == 1 always raises; index % 3 == 2 raises on its first attempt only."""
    from ray import tune

    mark = Path(marks) / str(config["index"])
    if config["index"] % 3 == 1 or (config["index"] % 3 == 2 and not mark.exists()):
        mark.touch()
        raise RuntimeError(f"boom {config['index']}")
    tune.report({"accuracy": 0.5 + 0.01 * config["index"], "failed": False})


def test_ray_path_retries_and_records_failed_trials(local_ray, tmp_path):
    from ray import tune

    from nas.accuracy.proxy_config import ProxyConfig

    space = load_space(TINY)
    ev = Evaluator(get_device("pixel1"), None, RewardConfig.hard(1.3))
    (tmp_path / "marks").mkdir()
    run = SearchRun(tmp_path / "run", space, make_algorithm("evolution", space, seed=0, population=4), ev, 4)
    records = run.run_on_ray(ProxyConfig(), max_failures=1,
                             trainable=tune.with_parameters(_flaky_trainable, marks=str(tmp_path / "marks")))
    assert [r["i"] for r in records] == list(range(4))
    ok = [r["reward"] for r in records if not r["failed"]]
    for r in records:
        if r["i"] % 3 == 1:  # told the worst reward logged so far (0 before any): one of the networks'
            assert r["failed"] and (r["reward"] == 0 or r["reward"] in ok) and "boom" in r["reason"], r
        else:
            assert not r["failed"] and r["accuracy"] == pytest.approx(0.5 + 0.01 * r["i"]) and r["reward"] > 0
    assert (tmp_path / "run" / "searcher.ckpt").exists() and run.done == 4


def _dying_trainable(config, marks):
    """The worker process dies (SIGKILL, as the OOM killer does): always for index % 3 == 1, on the
    first attempt only for index % 3 == 2."""
    import signal

    from ray import tune

    mark = Path(marks) / str(config["index"])
    if config["index"] % 3 == 1 or (config["index"] % 3 == 2 and not mark.exists()):
        mark.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    tune.report({"accuracy": 0.5 + 0.01 * config["index"], "failed": False})


@pytest.mark.parametrize("retries", [0, 1])
def test_ray_path_survives_dying_workers(local_ray, tmp_path, retries):
    from ray import tune

    from nas.accuracy.proxy_config import ProxyConfig

    space = load_space(TINY)
    ev = Evaluator(get_device("pixel1"), None, RewardConfig.hard(1.3))
    (tmp_path / "marks").mkdir()
    run = SearchRun(tmp_path / "run", space, make_algorithm("evolution", space, seed=0, population=4), ev, 6)
    records = run.run_on_ray(ProxyConfig(), max_failures=retries,
                             trainable=tune.with_parameters(_dying_trainable, marks=str(tmp_path / "marks")))
    assert [r["i"] for r in records] == list(range(6))  # the search went on past every death
    ok = [r["reward"] for r in records if not r["failed"]]
    for r in records:
        dies = r["i"] % 3 == 1 or (r["i"] % 3 == 2 and retries == 0)
        if dies:
            assert r["failed"] and (r["reward"] == 0 or r["reward"] in ok) and "died" in r["reason"], r
        else:
            assert not r["failed"] and r["accuracy"] == pytest.approx(0.5 + 0.01 * r["i"]), r


def test_ray_path_trains_a_tiny_proxy(local_ray, tmp_path, fashion_mnist):
    """End to end: a local Ray, real training on Fashion-MNIST or its stand-in (2 epochs of 128 images), ASHA."""
    from nas.accuracy.proxy_config import DataConfig, ProxyConfig, TrainConfig

    space = load_space(TINY)
    proxy = ProxyConfig(DataConfig(path=str(fashion_mnist)),
                        TrainConfig(train_images=128, val_images=64, epochs=2, batch_size=32, bn_images=64))
    ev = Evaluator(get_device("pixel1"), None, RewardConfig.hard(1.3))
    run = SearchRun(tmp_path, space, make_algorithm("controller", space, seed=0, batch_size=2), ev, 4)
    records = run.run_on_ray(proxy, asha=True)
    assert [r["i"] for r in records] == list(range(4))
    assert all(not r["failed"] and 0 < r["accuracy"] <= 1 and r["reward"] > 0 for r in records)
    assert run.algorithm.controller.updates == 2


def test_diverging_training_is_a_failed_sample_and_the_search_goes_on(tmp_path, fashion_mnist):
    """Real training at an absurd learning rate: the loss turns NaN; each such network fails (reward 0:
    no network has succeeded to be worse than)."""
    from nas.accuracy.proxy_config import DataConfig, ProxyConfig, TrainConfig
    from nas.accuracy.proxy import TrainingProxy

    space = load_space(TINY)
    recipe = TrainConfig(train_images=64, val_images=32, steps=6, batch_size=16, bn_images=16, lr=1e12,
                         clip_grad=None)
    proxy = TrainingProxy("train", ProxyConfig(DataConfig(path=str(fashion_mnist)), recipe, threads=1))
    ev = Evaluator(get_device("pixel1"), proxy, RewardConfig.hard(1.3))
    run = SearchRun(tmp_path, space, make_algorithm("random", space, seed=0), ev, 4)
    records = run.run_inprocess(batch_size=2)
    assert [r["i"] for r in records] == list(range(4))
    assert all(r["failed"] and r["reward"] == 0 and "non-finite" in r["reason"] for r in records), records
