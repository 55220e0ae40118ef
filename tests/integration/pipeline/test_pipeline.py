"""The headline command `python -m nas.search`: its errors, and trials on a multi-node Ray cluster (the
run end to end at the smoke budget is tests/slow/pipeline/test_smoke_pipeline.py)."""
import json
import os
import sys

import numpy as np
import pytest
import yaml

from nas.latency.devices import get_device
from nas.runtime.jsonl import read_jsonl
from nas.pipeline.prepare import pick_space
from nas.pipeline.select import select_seed
from nas.core.space import load_space
from helpers import ROOT, assert_user_error, check_user_error, run_cli, run_inprocess


@pytest.mark.parametrize("args, needle", [
    (["--target-ms", "-5"], "--target-ms"),
    (["--target-ms", "nan"], "--target-ms"),
    (["--target-ms", "1e9"], "--target-ms"),
    ([], "target_ms"),
    (["--target-ms", "50", "--budget", "huge"], "--budget"),
    (["--target-ms", "50", "--device", "nokia3310"], "unknown device"),
    (["--target-ms", "50", "--space", "nope"], "unknown search space"),
    (["--target-ms", "50", "--seed", "-1"], "--seed"),
    (["--resume", "--out", "/nonexistent/run"], "config.yaml"),
    (["--target-ms", "50", "--config", "/nonexistent.yaml"], "not found"),
])
def test_bad_flags_are_one_line(args, needle, tmp_path, capsys):
    out = [] if "--out" in args else ["--out", str(tmp_path / "run")]
    code, _, err = run_inprocess(["nas.search", *args, *out], capsys)
    check_user_error(code, err, needle)
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_bad_flag_is_one_line_from_the_real_command(tmp_path):
    """The entry point itself (the in-process cases above call its main)."""
    assert_user_error(run_cli("nas.search", "--target-ms", "0", "--out", str(tmp_path / "run"), timeout=120),
                      "--target-ms")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, field", [("target_ms: 50\nbogus: 1\n", "bogus"),
                                         ("target_ms: [50\n", "YAML syntax"),
                                         ("target_ms: fast\n", "target_ms"),
                                         ("target_ms: 50\nreward_w: 3\n", "reward_w")])
def test_bad_config_files(tmp_path, text, field, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    code, _, err = run_inprocess(["nas.search", "--config", str(path), "--out", str(tmp_path / "run")], capsys)
    check_user_error(code, err, "run.yaml", field)
    assert not (tmp_path / "run").exists()


def test_shipped_configs_are_valid():
    from nas.pipeline.run_config import DEFAULTS, validate_config
    for name in ("reproduce_large", "reproduce_small", "custom_host"):
        path = ROOT / "experiments" / f"{name}.yaml"
        config = validate_config({**DEFAULTS, **yaml.safe_load(path.read_text())}, str(path))
        load_space(config.space)


def test_space_auto_follows_the_target():
    device = get_device("pixel1")
    assert pick_space("auto", 50.0, device)[0].name == "mobilenetv3_large"
    assert pick_space("auto", 15.0, device)[0].name == "mobilenetv3_small"


def test_select_seed_prefers_networks_just_above_the_target():
    space = load_space("mobilenetv3_large")
    device = get_device("pixel1")
    rng = np.random.default_rng(0)
    specs = [space.sample_spec(rng) for _ in range(60)]
    lat = device.predict_many(specs)[:, 0]
    target = float(np.median(lat))
    records = [{"i": i, "arch": s.to_string(), "latency_ms": float(ms), "reward": -abs(ms - target) + i * 1e-6,
                "failed": False} for i, (s, ms) in enumerate(zip(specs, lat))]
    best, note = select_seed(records, space, device, target)
    assert target <= device.predict(best).ms <= 1.3 * target
    # Nothing above the target: the best network is widened until it reaches it.
    below = [r for r in records if r["latency_ms"] < target]
    widened, note = select_seed(below, space, device, target)
    assert "widened" in note and device.predict(widened).ms >= target


class HeadBoundDevice:
    """Latency mostly in the head, which NetAdapt never narrows: widening cannot be undone."""

    def predict(self, spec):
        from nas.latency.predict import Prediction

        ms = spec.head.conv + 1e-3 * sum(b.exp + b.out for b in spec.blocks)
        return Prediction(ms, ms, ms)


def test_select_seed_does_not_widen_past_what_netadapt_can_cut_back():
    space = load_space(ROOT / "tests" / "data" / "tiny_space.yaml")
    device, seed = HeadBoundDevice(), space.seed_spec()
    ms = device.predict(seed).ms
    records = [{"i": 0, "arch": seed.to_string(), "latency_ms": ms, "reward": 1.0, "failed": False}]
    target = ms + 1  # the head widened by one step (64 -> 72) overshoots it, and stays at any width
    best, note = select_seed(records, space, device, target)
    assert best.to_string() == seed.to_string() and device.predict(best).ms < target
    assert "could not cut it back" in note


def _where(config):
    import ray
    from ray import tune
    tune.report({"accuracy": 0.5, "node": ray.get_runtime_context().get_node_id()})


# Alone, after the parallel pass: beside another worker's heavy test, the two-node cluster's trial
# actors were once all cancelled before they started (every sample failed); alone it passes.
@pytest.mark.serial
def test_trials_run_on_the_cluster_given_by_address(tmp_path, monkeypatch):
    """A search joined to a cluster (--address) runs its trials there: the head offers no CPU, so
    every trial must land on the second node (placement decided by resources, not by timing)."""
    # This in-process cluster has no token authentication; a token file in ~/.ray would otherwise
    # switch the driver to token mode (test_ray_cluster.py covers a `ray start` cluster with tokens).
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    from ray import cloudpickle
    from ray.cluster_utils import Cluster

    from nas.accuracy.proxy_config import ProxyConfig
    from nas.search.algorithms import make_algorithm
    from nas.search.search_loop import Evaluator, SearchRun
    from nas.search.reward import RewardConfig

    os.makedirs("/tmp/ray", exist_ok=True)  # Ray records the cluster address there
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    import ray
    ray.shutdown()  # a Ray left running by an earlier test would take the trials instead of the cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    assert len(cluster.list_all_nodes()) == 2
    try:
        space = load_space(ROOT / "tests" / "data" / "tiny_space.yaml")
        ev = Evaluator(get_device("pixel1"), None, RewardConfig.hard(1.3))
        run = SearchRun(tmp_path, space, make_algorithm("random", space, seed=0), ev, 4)
        run.run_on_ray(ProxyConfig(), address=cluster.address, trainable=_where)
        nodes = [json.loads(line)["node"] for result in tmp_path.glob("tune-*/*/result.json")
                 for line in result.read_text().splitlines()]
        samples = read_jsonl(tmp_path / "samples.jsonl")
        assert [s["i"] for s in samples] == list(range(4)) and not any(s["failed"] for s in samples)
        # A local Ray (the address ignored) would report nodes of its own.
        assert nodes == [worker.node_id] * 4, (nodes, worker.node_id, cluster.head_node.node_id)
    finally:
        ray.shutdown()
        cluster.shutdown()
