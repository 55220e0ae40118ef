"""The headline command: `python -m nas.search`, end to end at the smoke budget with one process
owning its run, its errors, and trials on a multi-node Ray cluster."""
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from nas.latency.devices import get_device
from nas.runtime.jsonl import read_jsonl
from nas.pipeline.prepare import pick_space
from nas.pipeline.select import select_seed
from nas.core.space import load_space
from nas.core.spec_file import load_spec
from helpers import ROOT, assert_user_error, check_user_error, run_cli, run_inprocess


# Slow (about 5 minutes, the suite's longest test by 6x): the fast path keeps a whole smoke pipeline
# in .ci/run's wheel check (`nas-search --budget smoke`) and, on the tiny space, in test_family.py and
# test_supernet_search.py.
@pytest.mark.slow
def test_smoke_pipeline_end_to_end_and_resume(tmp_path, fashion_mnist):
    out = tmp_path / "run"
    proc = run_owning_its_run(["--target-ms", "50", "--budget", "smoke", "--out", str(out), "--json",
                               "--data", str(fashion_mnist)], out, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("final_spec", "onnx", "predicted_ms", "measured_host_ms", "proxy_accuracy", "samples", "wall_s"):
        assert key in result, key
    # NetAdapt stops at the target, never above it; and its last step cuts only what the target needs.
    assert 0.98 * 50 <= result["predicted_ms"] <= 50, result["predicted_ms"]
    assert result["max_abs_diff"] <= 1e-4 and result["measured_host_ms"] > 0
    assert result["space"] == "mobilenetv3_large"  # auto picks Large for 50 ms on pixel1
    # The final network beside the width-scaled MobileNetV3-Large at the same latency, each trained
    # with the final recipe at the smoke budget's 2 seeds; a difference with its CI, and a verdict.
    final_row, scaled = result["comparison"]
    assert (final_row["kind"], scaled["kind"]) == ("final", "width_scaled")
    assert abs(scaled["latency_ms"] / 50 - 1) <= 0.02 and scaled["name"].startswith("mobilenetv3_large_x")
    for row in (final_row, scaled):
        assert row["seeds"] == 2 and len(row["accuracies"]) == 2 and row["accuracy_sd"] is not None
        assert row["accuracy_mean"] == pytest.approx(sum(row["accuracies"]) / 2)
    diff = scaled["difference"]
    assert diff["ci_low"] <= diff["mean"] <= diff["ci_high"]
    assert diff["mean"] == pytest.approx(final_row["accuracy_mean"] - scaled["accuracy_mean"])
    assert scaled["judgement"] in result["verdict"] or "indistinguishable" in result["verdict"]
    assert result["proxy_accuracy"] == final_row["accuracy_mean"]
    assert len(read_jsonl(out / "compare" / "trainings.jsonl")) == 4
    final = load_spec(result["final_spec"])
    assert get_device("pixel1").predict(final).ms == pytest.approx(result["predicted_ms"], abs=1e-3)
    assert get_device("pixel1").predict(final).ms <= 50
    for name in ("config.yaml", "best.yaml", "final.yaml", "final.onnx", "report.md", "search/samples.jsonl",
                 "netadapt/netadapt.jsonl", "search_progress.png", "pareto.png", "summary.json"):
        assert (out / name).exists(), name
    samples = read_jsonl(out / "search" / "samples.jsonl")
    assert len(samples) == result["samples"] == 96
    assert [s["i"] for s in samples] == list(range(96))
    report = (out / "report.md").read_text()
    assert "mobilenetv3_large" in report and "ir_k" in report
    # The deploy stage: final.tflite checked against torch; int8 timed against fp32 on both runtimes
    # and scored on the proxy task with the compare stage's trained final network.
    assert result["tflite"] == str(out / "final.tflite") and (out / "final.tflite").stat().st_size > 0
    deploy = result["deploy"]
    assert deploy["tflite_max_abs_diff"] <= 1e-4
    for runtime in ("onnxruntime", "litert"):
        t = deploy["int8"][runtime]
        assert t["fp32_ms"] > 0 and t["int8_ms"] > 0 and t["speedup"] == pytest.approx(t["fp32_ms"] / t["int8_ms"], rel=1e-2)
    acc = deploy["int8"]["accuracy"]
    assert acc["val_images"] > 0 and abs(acc["onnx_int8_drop_points"]) < 10 and abs(acc["tflite_int8_drop_points"]) < 10
    assert acc["fp32_top1"] > 0.2  # the compare stage's trained network, not random weights (0.1)
    assert (out / "compare" / "final-seed0.pt").exists()
    assert "## Deployment" in report and "int8 against fp32" in report and "python -m nas.train" in report
    assert result["train_command"] == f"python -m nas.train {out / 'final.yaml'} --out {out / 'train'} " \
                                      f"--data {fashion_mnist} --dataset fashion-mnist"
    assert "**Verdict:**" in report and "final − this, points [95% CI]" in report
    assert "# ir_k" in (out / "final.yaml").read_text()  # block strings beside every row
    # Resuming a finished run redoes nothing and answers the same.
    again = run_cli("nas.search", "--resume", "--out", str(out), "--json", timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert second["final_spec"] == result["final_spec"] and second["predicted_ms"] == result["predicted_ms"]
    assert len(read_jsonl(out / "search" / "samples.jsonl")) == 96
    assert len(read_jsonl(out / "compare" / "trainings.jsonl")) == 4  # nothing trained twice
    assert second["comparison"] == result["comparison"] and second["verdict"] == result["verdict"]


def run_owning_its_run(args: list[str], out: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`python -m nas.search ARGS` to the end; while it runs, a second process on the same run
    (`--resume --out`) must be refused at once: exit 2, one line naming the first's pid and how to resume.

    The first is stopped (SIGSTOP) while the second tries, so that it cannot finish and release
    the lock before a slow second start-up reaches it."""
    stdout = open(tmp_path / "first.out", "w+")
    first = subprocess.Popen([sys.executable, "-m", "nas.search", *args], cwd=ROOT, stdout=stdout,
                             stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    started = threading.Event()  # its first log line names the run: config.yaml is written and locked

    def read_stderr():
        for line in first.stderr:
            lines.append(line)
            if f"; run {out}" in line:
                started.set()
        started.set()  # it ended without starting: the assertions below say so

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        started.wait(timeout=300)
        assert first.poll() is None and (out / "config.yaml").exists(), "".join(lines)[-3000:]
        saved = (out / "config.yaml").read_text()
        first.send_signal(signal.SIGSTOP)
        try:
            second = run_cli("nas.search", "--resume", "--out", str(out), timeout=120)
        finally:
            first.send_signal(signal.SIGCONT)
        # Refused at once while the first holds the run, instead of waiting for its lock.
        assert_user_error(second, str(out), f"pid {first.pid}", f"--resume --out {out}")
        assert (out / "config.yaml").read_text() == saved
        first.wait(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        reader.join(timeout=60)
    stdout.seek(0)
    text = stdout.read()
    stdout.close()
    return subprocess.CompletedProcess(first.args, first.returncode, text, "".join(lines))


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
