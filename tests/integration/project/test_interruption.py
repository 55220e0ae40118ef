"""Ctrl-C and kill -9 of a search, a table build and NetAdapt, then --resume.

Each case: SIGINT once the run has reached a chosen state (a log line, a file: never a moment on
the clock), exit 130 with one last line saying how to resume and every file whole; SIGKILL of the
resumed run at a later state (every file whole but for at most a torn last log line); then the
resume command runs to the end and leaves only whole files and no process behind. Random moments:
experiments/benchmarks/interruption_audit.py.
"""
from __future__ import annotations

import json
import os
import signal

import pytest

from pathlib import Path

from helpers import DATA, REFERENCE
from helpers.interrupt import ENV, broken_files, interrupt_twice_then_finish, lines_in, run_until, tree_cpus
from nas.latency.devices import get_device
from nas.latency.table import LatencyTable
from nas.runtime.jsonl import read_jsonl
from nas.core.spec_file import load_spec

TINY_SPACE = DATA / "tiny_space.yaml"


SEARCH_SAMPLES = 240  # 15 batches: the search lasts long enough to be interrupted in its middle


def test_search_interrupted_and_resumed(tmp_path, fashion_mnist):
    out = tmp_path / "run"
    samples, netadapt = out / "search" / "samples.jsonl", out / "netadapt" / "netadapt.jsonl"
    cmd = ["nas.search", "--target-ms", "15", "--space", "mobilenetv3_small", "--budget", "smoke",
           "--samples", str(SEARCH_SAMPLES), "--data", str(fashion_mnist), "--out", str(out), "--cpus", "1",
           "--deploy", "none"]
    free = {k: v for k, v in ENV.items() if k != "OMP_NUM_THREADS"}  # torch would take every CPU it may
    # SIGINT once the first batch is logged (mid-search); SIGKILL of the resumed run once NetAdapt has
    # logged its seed (mid-iteration); the resumed command (no --cpus) is probed for its CPUs first.
    _, second, _ = interrupt_twice_then_finish(
        cmd, out, lambda: lines_in(samples) >= 16, lambda: lines_in(netadapt) >= 2, env=free, probe=tree_cpus)
    # --cpus 1, saved in the run's config, binds the resumed run and every process it started: one CPU.
    assert len(second.probed) == 1 and second.probed <= os.sched_getaffinity(0), second.probed
    logged = read_jsonl(samples)
    assert [s["i"] for s in logged] == list(range(SEARCH_SAMPLES))  # each sample once, none lost
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == SEARCH_SAMPLES
    assert get_device("pixel1").predict(load_spec(out / "final.yaml")).ms == pytest.approx(summary["predicted_ms"],
                                                                                          abs=1e-3)


def netadapt_command(out: Path, data: Path) -> tuple[list[str], float]:
    """A cheap NetAdapt of MobileNetV3-Small to 90% of its latency: a 5-step seed training of some
    seconds, then one or two iterations of about ten proposals (1 step each), seconds apiece."""
    spec = REFERENCE / "mobilenetv3_small.yaml"
    target = round(0.9 * get_device("pixel1").predict(load_spec(spec)).ms, 2)
    return ["nas.netadapt", "--spec", str(spec), "--target-ms", str(target), "--out", str(out), "--budget", "smoke",
            "--steps", "1", "--final-steps", "0", "--delta", "0.05", "--seed-steps", "5", "--train-images", "64",
            "--val-images", "32", "--threads", "1", "--data", str(data)], target


def test_netadapt_interrupted_and_resumed(tmp_path, fashion_mnist):
    out = tmp_path / "na"
    cmd, target = netadapt_command(out, fashion_mnist)
    log = out / "netadapt.jsonl"
    # The log: start, the seed (iteration 0), iteration 1, ..., final. SIGINT while the seed trains,
    # SIGKILL of the resumed run in iteration 1; the last run resumes from the seed's checkpoint.
    interrupt_twice_then_finish(cmd, out, lambda: lines_in(log) >= 1, lambda: lines_in(log) >= 2)
    records = read_jsonl(log)
    assert [r["type"] for r in records].count("start") == 1
    iterations = [r["iteration"] for r in records if r["type"] == "iteration"]
    assert iterations == list(range(len(iterations))) and len(iterations) >= 2  # no iteration lost or repeated
    assert records[-1]["type"] == "final" and records[-1]["latency_ms"] <= target


def test_compare_stage_killed_and_resumed(tmp_path, fashion_mnist):
    """SIGKILL once the compare stage has logged its first training: its worker processes die with
    it, and --resume trains only the missing (network, seed) pairs."""
    out = tmp_path / "run"
    log = out / "compare" / "trainings.jsonl"
    cmd = ["nas.search", "--target-ms", "1.2", "--space", str(TINY_SPACE), "--budget", "smoke", "--samples", "16",
           "--data", str(fashion_mnist), "--out", str(out), "--deploy", "none"]
    killed = run_until(cmd, signal.SIGKILL, 0, lambda: lines_in(log) >= 1)
    assert killed.hit and killed.returncode == -signal.SIGKILL and killed.left_running == [], killed.left_running
    done_before = lines_in(log)
    assert 1 <= done_before < 4, done_before
    resumed = run_until(["nas.search", "--resume", "--out", str(out)], None)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trainings = read_jsonl(log)
    assert len(trainings) == 4 == len({(t["arch_hash"], t["fingerprint"]) for t in trainings})  # none twice
    rows = json.loads((out / "summary.json").read_text())["comparison"]
    assert [r["seeds"] for r in rows] == [2, 2]


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    """A scheduler's SIGTERM: exit status 143 and the same resume line."""
    table = tmp_path / "host.yaml"
    cmd = ["nas.latency", "build", "--space", str(TINY_SPACE), "--table", str(table), "--chunk", "8",
           "--calibration-samples", "2"]
    got = run_until(cmd, signal.SIGTERM, 0, lambda: table.exists())  # a first chunk saved
    assert got.hit and got.returncode == 143, got.stderr[-2000:]
    assert got.last_line.startswith("terminated; continue with: python -m nas.latency build")
    assert broken_files(tmp_path, finished=False) == []


def test_table_build_interrupted_and_resumed(tmp_path):
    table = tmp_path / "host.yaml"
    cmd = ["nas.latency", "build", "--space", str(TINY_SPACE), "--table", str(table), "--chunk", "8",
           "--calibration-samples", "2", "--force"]
    saved = {}

    def grown():  # the resumed build has saved a chunk of its own
        if "before" not in saved:
            saved["before"] = len(LatencyTable.load(table))
        return table.stat().st_size > 0 and len(LatencyTable.load(table)) > saved["before"]

    interrupt_twice_then_finish(cmd, tmp_path, lambda: table.exists(), grown)
    whole = LatencyTable.load(table)
    assert whole.calibration and whole.calibration["fitted_on"] == 3


RAY_HELPER = """
import os, sys, time
from ray import tune
from helpers import DATA  # tests/ is on the PYTHONPATH (helpers.interrupt.ENV)
from nas.latency.devices import get_device
from nas.accuracy.proxy_config import ProxyConfig
from nas.search.reward import RewardConfig
from nas.search.search_loop import Evaluator, SearchRun
from nas.search.algorithms import make_algorithm
from nas.core.space import load_space

GATE = {gate!r}


def gated_trainable(config):
    # Samples from 3 on wait until the test opens the gate: the first run is interrupted with
    # exactly samples 0-2 logged and two trials in flight.
    deadline = time.monotonic() + 300
    while config["index"] >= 3 and not os.path.exists(GATE) and time.monotonic() < deadline:
        time.sleep(0.05)
    tune.report({{"accuracy": 0.5 + 0.01 * config["index"], "failed": False}})


space = load_space(DATA / "tiny_space.yaml")
run = SearchRun(sys.argv[1], space, make_algorithm("evolution", space, seed=0, population=4),
                Evaluator(get_device("pixel1"), None, RewardConfig.hard(1.3)), 10, resume=sys.argv[2] == "1")
try:
    run.run_on_ray(ProxyConfig(), cpus=2, trainable=gated_trainable)
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""


def test_ctrl_c_reaches_a_search_on_ray(tmp_path):
    """Ray Tune's own Ctrl-C handler would end fit() quietly with the trials so far, and the pipeline
    would go on with a short search: Ctrl-C must stop the search and its Ray, and --resume complete it."""
    script, gate = tmp_path / "ray_helper.py", tmp_path / "gate"
    script.write_text(RAY_HELPER.format(gate=str(gate)))
    run_dir, log = tmp_path / "run", tmp_path / "run" / "samples.jsonl"
    first = run_until([str(script), str(run_dir), "0"], signal.SIGINT, 0, lambda: lines_in(log) >= 3, module=False)
    assert first.hit and first.returncode == 130, first.stderr[-3000:]
    assert first.left_running == []  # no Ray process outlives the Ctrl-C
    assert sorted(r["i"] for r in read_jsonl(log)) == [0, 1, 2]
    # The project's own files must be whole; Ray Tune's (result.json, experiment state) it writes in place.
    assert broken_files(run_dir, finished=False) == []
    gate.touch()
    last = run_until([str(script), str(run_dir), "1"], None, module=False)
    assert last.returncode == 0, last.stderr[-3000:]
    assert last.left_running == []
    assert sorted(r["i"] for r in read_jsonl(log)) == list(range(10))
