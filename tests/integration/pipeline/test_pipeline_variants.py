"""`python -m nas.search` run the other ways: the host device, the MnasNet reward, random search and
a training proxy on Ray in one run; and a run interrupted mid-search, resumed, against one that was
not. Each option is checked by what it changes, not only by what the run directory records.

Both on the tiny space (the first at 64x64, for its host timings; the second at 32x32) and the
smoke budget with --cpus 1, so that each run takes seconds beyond its start-up (Ray's, torch's) and
the fixed cost of the comparison stage.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from helpers import DATA, ROOT, run_cli
from helpers.interrupt import broken_files, run_until
from nas.core.space import load_space
from nas.core.spec import spec_from_string
from nas.core.spec_file import load_spec
from nas.latency.devices import TableDevice, get_device, host_device, load_host_table
from nas.latency.table import LatencyTable
from nas.pipeline.select import floor_ms
from nas.runtime.jsonl import read_jsonl
from nas.search.algorithms import make_algorithm

TINY_SPACE = DATA / "tiny_space.yaml"
SAMPLES = 4


@pytest.fixture(scope="module")
def variant_run(tmp_path_factory, fashion_mnist):
    """One smoke run on the host device, with the MnasNet reward, random search and a training proxy
    on Ray: what it was asked, what it wrote and answered, and the host table it measured into."""
    tmp_path = tmp_path_factory.mktemp("variants")
    # The tiny space at 64x64, not its 32x32: there its networks are so fast that one network's
    # prediction moved far from one fresh table to the next (idle or with the suite's other worker
    # busy), so that a table could time a narrower op slower and leave NetAdapt no cut that lowers
    # the latency (its one-line error, exit 2, is right for such a device). At 64x64 the slowest
    # sample lies well above the target below and its prediction is steady (the figures: the Test
    # suite section of docs/benchmarks.md); a draw that still leaves no reachable target is measured
    # again, on a fresh table, up to three times.
    tiny = yaml.safe_load(TINY_SPACE.read_text())
    space_file = tmp_path / "tiny64.yaml"
    space_file.write_text(yaml.safe_dump({**tiny, "resolution": 64}, sort_keys=False))
    space = load_space(space_file)
    config = tmp_path / "run.yaml"
    config.write_text("reward_w: -0.5\n")  # far from TuNAS's reward and from the space's -0.07
    with pytest.MonkeyPatch.context() as monkeypatch:
        for attempt in range(3):
            cache = tmp_path / f"cache{attempt}"
            monkeypatch.setenv("NAS_CACHE_DIR", str(cache))  # this run's host table, and nobody else's
            table = load_host_table(1)
            # The real calibration times six MobileNetV3s whole (slow here); with a unit one the run
            # measures only the ops it meets, and a prediction is their plain sum.
            table.calibration = {"scale": 1.0, "offset_ms": 0.0}
            table.save()
            # The run's samples are random's seeded draws. Timed here first, they give a target that
            # NetAdapt can reach from any of them (above every floor) and must work for (below the slowest):
            # a fixed target could fall below the floor on a faster host, or above every sample on a slower one.
            random = make_algorithm("random", space, seed=0)
            draws = [list(random.ask().tokens) for _ in range(SAMPLES)]
            host = host_device(1)
            specs = [space.decode(tokens) for tokens in draws]
            target = round(1.05 * max(floor_ms(spec, host) for spec in specs), 4)
            if target >= max(host.predict(spec).ms for spec in specs):
                continue
            seeded_ops = set(LatencyTable.load(table.path).ops)
            out = tmp_path / f"run{attempt}"
            proc = run_cli("nas.search", "--config", str(config), "--target-ms", str(target), "--space",
                           str(space_file), "--device", "host", "--reward", "mnasnet", "--algorithm", "random",
                           "--proxy", "train-2steps", "--samples", str(SAMPLES), "--budget", "smoke", "--cpus", "1",
                           "--data", str(fashion_mnist), "--deploy", "none", "--out", str(out), "--json",
                           timeout=600)
            if not (proc.returncode == 2 and "no width can shrink further" in proc.stderr):
                break
        else:
            pytest.fail("three fresh host tables in a row left no reachable target")
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = read_jsonl(out / "search" / "samples.jsonl")
    assert [s["i"] for s in samples] == list(range(SAMPLES))
    return SimpleNamespace(out=out, target=target, draws=draws, table_path=table.path, seeded_ops=seeded_ops,
                           result=json.loads(proc.stdout.strip().splitlines()[-1]), samples=samples,
                           summary=json.loads((out / "summary.json").read_text()),
                           saved=yaml.safe_load((out / "config.yaml").read_text()))


def test_the_run_records_the_options_it_was_given(variant_run):
    for key, value in {"device": "host", "reward": "mnasnet", "algorithm": "random", "proxy": "train-2steps",
                       "reward_w": -0.5}.items():
        saved, summary = variant_run.saved[key], variant_run.summary[key]
        assert saved == value and summary == value, (key, saved, summary)


def test_random_search_samples_exactly_the_seeded_uniform_draws(variant_run):
    # (the controller would propose others)
    assert [s["tokens"] for s in variant_run.samples] == variant_run.draws


def test_a_training_proxy_on_ray_scores_each_sample_by_its_top1(variant_run):
    # One Tune trial per sample, each scored by its top-1, not by its MACs.
    assert len(list((variant_run.out / "search").glob("tune-0/sample-*"))) == SAMPLES
    for s in variant_run.samples:
        assert not s["failed"] and 0 < s["accuracy"] <= 1 and s["score"] == pytest.approx(s["accuracy"], abs=1e-6)


def _host_latencies(run) -> tuple[TableDevice, dict]:
    host = TableDevice("host", LatencyTable.load(run.table_path))  # no measurer: a missing op would be an error
    return host, {s["i"]: host.predict(spec_from_string(s["arch"])).ms for s in run.samples}


def test_the_host_device_measures_the_ops_it_meets_and_gives_its_tables_latencies(variant_run):
    run = variant_run
    assert run.seeded_ops < set(LatencyTable.load(run.table_path).ops)  # measured into this cache's table
    host, latency = _host_latencies(run)
    for s in run.samples:
        assert s["latency_ms"] == pytest.approx(latency[s["i"]], abs=1e-4)
    final = load_spec(run.out / "final.yaml")
    assert host.predict(final).ms == pytest.approx(run.summary["predicted_ms"], abs=1e-4)
    assert abs(get_device("pixel1").predict(final).ms / run.summary["predicted_ms"] - 1) > 0.5  # not pixel1's
    assert run.result["predicted_ms"] == run.summary["predicted_ms"] <= run.target
    assert run.summary["netadapt_iterations"] >= 1  # NetAdapt cut on the host's latencies


def test_the_mnasnet_reward_is_recomputed_from_accuracy_and_latency(variant_run):
    # ACC x (LAT/T)^w with w = -0.5; TuNAS's ACC - 0.1 |LAT/T - 1| differs.
    _, latency = _host_latencies(variant_run)
    target = variant_run.target
    for s in variant_run.samples:
        ratio = latency[s["i"]] / target
        assert s["reward"] == pytest.approx(s["accuracy"] * ratio ** -0.5, abs=2e-6), s
    assert any(abs(s["reward"] - (s["accuracy"] - 0.1 * abs(latency[s["i"]] / target - 1))) > 1e-3
               for s in variant_run.samples)


# What may differ between two runs of the same config and seed: timings, and the paths of the run.
TIMINGS = {"seconds", "wall_s", "wall_s_before_resume", "eval_s", "measured_host_ms"}


def _deterministic(value, run_dir):
    """`value` without timings, its run directory's path replaced by a placeholder."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in TIMINGS}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    return json.loads(json.dumps(strip(value)).replace(str(run_dir), "<run>"))


def _answer(run_dir):
    """Everything a run computed that its config and seed determine."""
    state = json.loads((run_dir / "pipeline.json").read_text())
    for measured in ("latency_ms", "latency_p10_ms", "latency_p90_ms"):  # the ONNX model timed on this host
        state["done"]["export"].pop(measured)
    return _deterministic({
        "samples": read_jsonl(run_dir / "search" / "samples.jsonl"),
        "best": (run_dir / "best.yaml").read_text(), "final": (run_dir / "final.yaml").read_text(),
        "netadapt": read_jsonl(run_dir / "netadapt" / "netadapt.jsonl"),
        "pipeline": state, "summary": json.loads((run_dir / "summary.json").read_text()),
    }, run_dir)


def test_a_pipeline_interrupted_mid_search_and_resumed_answers_as_one_that_was_not(tmp_path, fashion_mnist):
    """Ctrl-C once the first batch of samples is on disk, then --resume: the same samples (tokens,
    latencies, rewards, exactly), the same seed network, NetAdapt result, final spec and summary."""
    runs = {name: tmp_path / name / "run" for name in ("straight", "interrupted")}
    args = ["--target-ms", "1.2", "--space", str(TINY_SPACE), "--budget", "smoke", "--samples", "64",
            "--cpus", "1", "--data", str(fashion_mnist), "--deploy", "none"]
    # The uninterrupted run goes alongside, on another CPU where there is one (--cpus 1 takes the
    # least busy CPU it is given): a CPU's worth each, so neither computes differently.
    cpus = sorted(os.sched_getaffinity(0))
    err = open(tmp_path / "straight.err", "w+")
    straight = subprocess.Popen([sys.executable, "-m", "nas.search", *args, "--out", str(runs["straight"])],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: os.sched_setaffinity(0, {cpus[-1]}))
    try:
        interrupt_and_resume(args, runs["interrupted"])
        assert straight.wait(timeout=600) == 0, (tmp_path / "straight.err").read_text()[-3000:]
    finally:
        if straight.poll() is None:
            straight.kill()
            straight.wait()
        err.close()

    expected, got = _answer(runs["straight"]), _answer(runs["interrupted"])
    assert got["samples"] == expected["samples"]
    assert got["best"] == expected["best"] and got["final"] == expected["final"]
    assert got["netadapt"] == expected["netadapt"]
    assert got["pipeline"] == expected["pipeline"]
    assert got["summary"] == expected["summary"]
    assert expected["summary"]["predicted_ms"] <= 1.2


def interrupt_and_resume(args: list[str], out) -> None:
    """The run in `out`: Ctrl-C once its first batch of 16 samples is logged, then --resume to the end."""
    log = out / "search" / "samples.jsonl"
    first = run_until(["nas.search", *args, "--out", str(out)], signal.SIGINT, 0,
                      ready=lambda: log.exists() and log.read_text().count("\n") >= 16)  # one batch logged
    assert first.hit and first.returncode == 130, first.stderr[-3000:]
    assert f"continue with: python -m nas.search --resume --out {out}" in first.last_line
    state = json.loads((out / "pipeline.json").read_text())
    assert "search" not in state["done"] and "score_map" in state  # stopped mid-search, the map kept
    assert 16 <= len(read_jsonl(log)) < 64
    assert broken_files(out, finished=False) == []
    resumed = run_cli("nas.search", "--resume", "--out", str(out), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
