"""Ctrl-C and kill -9 at a random moment of a search, a table build and NetAdapt, then --resume.

Each case: SIGINT at a seeded random moment (exit 130, one last line saying how to resume, every
file whole), SIGKILL at another moment of the resumed run (every file whole but for at most a torn
last log line), then the resume command runs to the end and leaves only whole files. Many more
moments: experiments/benchmarks/interruption_audit.py.
"""
from __future__ import annotations

import json
import random
import shlex
import signal

import pytest

from pathlib import Path

from helpers import DATA, REFERENCE
from helpers.interrupt import ENV, broken_files, run_until
from nas.latency.devices import get_device
from nas.latency.table import LatencyTable
from nas.accuracy.datasets import FASHION_MNIST_DIR
from nas.runtime.jsonl import read_jsonl
from nas.core.spec import load_spec

needs_data = pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Fashion-MNIST is not installed")
TINY_SPACE = DATA / "tiny_space.yaml"


def resume_hint(outcome) -> list[str]:
    """The command the SIGINT message gives, as argv for `python -m`."""
    line = outcome.last_line
    assert outcome.returncode == 130 and "interrupted; continue with: python -m " in line, outcome.stderr[-2000:]
    assert "Traceback" not in outcome.stderr
    command = line.split("continue with: ", 1)[1].split("  (")[0]
    return shlex.split(command)[2:]


def interrupt_twice_then_finish(cmd, out, ready, rng, sigint_window, sigkill_window, resumed_ready=None,
                                timeout=600, env=None):
    """SIGINT, then SIGKILL of the resumed run, then the resumed run to the end; returns the last outcome."""
    first = run_until(cmd, signal.SIGINT, rng.uniform(*sigint_window), ready, timeout, env)
    assert first.hit, "finished before the SIGINT"
    assert broken_files(out, finished=False) == []
    again = resume_hint(first)
    second = run_until(again, signal.SIGKILL, rng.uniform(*sigkill_window), resumed_ready() if resumed_ready
                       else (lambda: True), timeout=timeout, env=env)
    assert second.hit and second.returncode == -signal.SIGKILL, second.stderr[-2000:]
    assert broken_files(out, finished=False) == []
    last = run_until(again, None, 0, timeout=timeout, env=env)
    assert last.returncode == 0, last.stderr[-3000:]
    assert broken_files(out, finished=True) == []
    return last


@needs_data
def test_search_interrupted_and_resumed(tmp_path):
    out = tmp_path / "run"
    cmd = ["nas.search", "--target-ms", "15", "--space", "mobilenetv3_small", "--budget", "smoke",
           "--out", str(out), "--cpus", "1"]
    free = {k: v for k, v in ENV.items() if k != "OMP_NUM_THREADS"}  # torch would take every CPU it may
    last = interrupt_twice_then_finish(cmd, out, lambda: (out / "config.yaml").exists(), random.Random(8),
                                       sigint_window=(0.5, 6), sigkill_window=(3, 12), env=free)
    # --cpus 1 (saved in the run's config) bounds the resumed run too: one CPU's worth of time at most
    # (unbounded, this run uses about 1.6 CPUs of this 2-core machine).
    assert last.cpu_s <= 1.1 * last.seconds, (last.cpu_s, last.seconds)
    samples = read_jsonl(out / "search" / "samples.jsonl")
    assert [s["i"] for s in samples] == list(range(96))  # each sample once, none lost
    summary = json.loads((out / "summary.json").read_text())
    assert get_device("pixel1").predict(load_spec(out / "final.yaml")).ms == pytest.approx(summary["predicted_ms"],
                                                                                          abs=1e-3)


@needs_data
def test_netadapt_interrupted_and_resumed(tmp_path):
    out = tmp_path / "na"
    spec = REFERENCE / "mobilenetv3_small.yaml"
    target = round(0.8 * get_device("pixel1").predict(load_spec(spec)).ms, 2)
    cmd = ["nas.netadapt", "--spec", str(spec), "--target-ms", str(target), "--out", str(out), "--budget", "smoke",
           "--steps", "2", "--final-steps", "0", "--delta", "0.05", "--seed-steps", "20", "--train-images", "256",
           "--val-images", "128", "--threads", "1"]
    log = out / "netadapt.jsonl"
    interrupt_twice_then_finish(cmd, out, lambda: log.exists(), random.Random(3),
                                sigint_window=(0.2, 4), sigkill_window=(3, 8))
    records = read_jsonl(log)
    iterations = [r["iteration"] for r in records if r["type"] == "iteration"]
    assert iterations == list(range(len(iterations)))  # no iteration lost or repeated
    assert records[-1]["type"] == "final" and records[-1]["latency_ms"] <= target


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    """A scheduler's SIGTERM: exit status 143 and the same resume line."""
    table = tmp_path / "host.yaml"
    cmd = ["nas.latency", "build", "--space", str(TINY_SPACE), "--table", str(table), "--chunk", "8",
           "--calibration-samples", "2"]
    got = run_until(cmd, signal.SIGTERM, 0.05, lambda: table.exists())
    assert got.hit and got.returncode == 143, got.stderr[-2000:]
    assert got.last_line.startswith("terminated; continue with: python -m nas.latency build")
    assert broken_files(tmp_path, finished=False) == []


def test_table_build_interrupted_and_resumed(tmp_path):
    table = tmp_path / "host.yaml"
    cmd = ["nas.latency", "build", "--space", str(TINY_SPACE), "--table", str(table), "--chunk", "8",
           "--calibration-samples", "2", "--force"]
    def grown():  # once the resumed build has saved a chunk of its own
        before = len(LatencyTable.load(table))
        return lambda: table.exists() and table.stat().st_size > 0 and len(LatencyTable.load(table)) > before

    interrupt_twice_then_finish(cmd, tmp_path, lambda: table.exists(), random.Random(5),
                                sigint_window=(0, 0.2), sigkill_window=(0, 0.2), resumed_ready=grown)
    whole = LatencyTable.load(table)
    assert whole.calibration and whole.calibration["fitted_on"] == 3


RAY_HELPER = """
import sys, time
sys.path.insert(0, {tests!r})
from ray import tune
from test_search_resume import TINY
from nas.latency.devices import get_device
from nas.accuracy.config import ProxyConfig
from nas.search.reward import RewardConfig
from nas.search.loop import Evaluator, SearchRun
from nas.search.algorithms import make_algorithm
from nas.core.space import load_space


def slow_trainable(config):
    time.sleep(0.4)
    tune.report({{"accuracy": 0.5 + 0.01 * config["index"], "failed": False}})


space = load_space(TINY)
run = SearchRun(sys.argv[1], space, make_algorithm("evolution", space, seed=0, population=4),
                Evaluator(get_device("pixel1"), None, RewardConfig.hard(1.3)), 10, resume=sys.argv[2] == "1")
try:
    run.run_on_ray(ProxyConfig(), cpus=2, trainable=slow_trainable)
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""


def test_ctrl_c_reaches_a_search_on_ray(tmp_path):
    """Ray Tune's own Ctrl-C handler would end fit() quietly with the trials so far, and the pipeline
    would go on with a short search: Ctrl-C must stop the search, and --resume complete it."""
    script = tmp_path / "ray_helper.py"
    script.write_text(RAY_HELPER.format(tests=str(Path(__file__).resolve().parent)))
    run_dir, log = tmp_path / "run", tmp_path / "run" / "samples.jsonl"
    ready = lambda: log.exists() and log.read_text().count("\n") >= 2  # noqa: E731
    first = run_until([str(script), str(run_dir), "0"], signal.SIGINT, 0.3, ready, module=False)
    assert first.hit and first.returncode == 130, first.stderr[-3000:]
    assert len(read_jsonl(log)) < 10
    assert broken_files(run_dir, finished=False) == []
    last = run_until([str(script), str(run_dir), "1"], None, 0, module=False)
    assert last.returncode == 0, last.stderr[-3000:]
    assert sorted(r["i"] for r in read_jsonl(log)) == list(range(10))
