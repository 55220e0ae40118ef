"""A search killed at any point and resumed logs exactly what an uninterrupted run logs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import DATA, ROOT, TESTS
from nas.runtime.errors import UserError
from nas.latency.devices import get_device
from nas.core.counts import count_params
from nas.search.reward import RewardConfig
from nas.runtime.jsonl import JsonlWriter, read_jsonl
from nas.search.search_loop import Evaluator, SearchRun
from nas.search.algorithms import make_algorithm
from nas.search.guided import token_latency
from nas.core.space import load_space

HERE = Path(__file__).resolve().parent
TINY = DATA / "tiny_space.yaml"
SAMPLES, BATCH = 48, 8


def _tiny_latency(many):
    return token_latency(load_space(TINY), get_device("pixel1"))(many)


OPTIONS = {"controller": {"batch_size": 8}, "random": {}, "evolution": {"population": 8, "tournament": 3},
           "guided-evolution": {"start": 12, "batch": 6, "candidates": 64, "target_ms": 1.3, "latency": _tiny_latency}}


class Crash(BaseException):
    """The process dies here (not an evaluation error, which the search would record)."""


class ParamsProxy:
    """Deterministic and cheap: the parameter count, optionally crashing, optionally holding still
    (a marker file says so) until it is killed."""

    cheap = True

    def __init__(self, crash_at: int | None = None, hold_at: int | None = None, held: str | None = None):
        self.crash_at, self.hold_at, self.held, self.calls = crash_at, hold_at, held, 0

    def evaluate(self, spec):
        self.calls += 1
        if self.crash_at is not None and self.calls == self.crash_at:
            raise Crash()
        if self.hold_at is not None and self.calls == self.hold_at:
            Path(self.held).touch()
            time.sleep(600)  # the test kills it here
        return {"score": float(count_params(spec)), "accuracy": None, "failed": False, "seconds": 0.0}


def to_accuracy(result):
    return min(1.0, 0.5 + 0.02 * (result["score"] / 1e4))


def build(run_dir, algorithm="controller", resume=False, proxy=None):
    torch.set_num_threads(1)   # float reductions identical in every process
    space = load_space(TINY)
    evaluator = Evaluator(get_device("pixel1"), proxy or ParamsProxy(), RewardConfig.hard(1.3), to_accuracy)
    return SearchRun(run_dir, space, make_algorithm(algorithm, space, seed=7, **OPTIONS[algorithm]), evaluator,
                     SAMPLES, resume=resume)


def key(records):
    return [(r["i"], tuple(r["tokens"]), r["reward"]) for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    threads = torch.get_num_threads()
    out = {name: key(build(tmp_path_factory.mktemp(name), name).run_inprocess(BATCH)) for name in OPTIONS}
    torch.set_num_threads(threads)
    return out


def check_log(run_dir, expected):
    logged = read_jsonl(Path(run_dir) / "samples.jsonl")
    indices = [r["i"] for r in logged]
    assert len(indices) == len(set(indices)), "an evaluation was logged twice"
    assert key(sorted(logged, key=lambda r: r["i"])) == expected


def test_uninterrupted_run_writes_log_and_state(reference, tmp_path):
    records = build(tmp_path, "random").run_inprocess(BATCH)
    assert [r["i"] for r in records] == list(range(SAMPLES))
    assert (tmp_path / "searcher.ckpt").exists()
    assert all(set(r) >= {"tokens", "arch", "latency_ms", "accuracy", "reward", "wall_s"} for r in records)
    check_log(tmp_path, reference["random"])
    with pytest.raises(UserError, match="--resume"):
        build(tmp_path, "random")
    done = build(tmp_path, "random", resume=True)   # resuming a finished run changes nothing
    assert key(done.run_inprocess(BATCH)) == reference["random"]
    with pytest.raises(UserError, match="evolution"):
        build(tmp_path, "evolution", resume=True)


# ---- crashes in-process, at every kind of point ---------------------------------------------

class CrashingWriter(JsonlWriter):
    """Dies after `left` more records: a kill between two lines of one batch's log."""

    left = 0

    def write_many(self, records):
        for r in records:
            if CrashingWriter.left == 0:
                raise Crash()
            CrashingWriter.left -= 1
            super().write_many([r])


@pytest.mark.parametrize("algorithm", sorted(OPTIONS))
@pytest.mark.parametrize("where", ["evaluating", "logging", "twice"])
def test_crash_and_resume_matches_uninterrupted(algorithm, where, reference, tmp_path, monkeypatch):
    if where == "evaluating":   # mid-batch, nothing of the batch logged
        with pytest.raises(Crash):
            build(tmp_path, algorithm, proxy=ParamsProxy(crash_at=21)).run_inprocess(BATCH)
    else:                       # 19 records logged: part of the third batch
        monkeypatch.setattr("nas.search.search_loop.JsonlWriter", CrashingWriter)
        CrashingWriter.left = 19
        with pytest.raises(Crash):
            build(tmp_path, algorithm).run_inprocess(BATCH)
        if where == "twice":    # and again while the re-issued remainder is logged
            CrashingWriter.left = 2
            with pytest.raises(Crash):
                build(tmp_path, algorithm, resume=True).run_inprocess(BATCH)
        monkeypatch.undo()
    build(tmp_path, algorithm, resume=True).run_inprocess(BATCH)
    check_log(tmp_path, reference[algorithm])


def test_torn_last_line_is_dropped_and_repaired(reference, tmp_path):
    with pytest.raises(Crash):
        build(tmp_path, proxy=ParamsProxy(crash_at=30)).run_inprocess(BATCH)
    log = tmp_path / "samples.jsonl"
    whole = log.read_bytes()
    with open(log, "ab") as f:
        f.write(b'{"i": 24, "tokens": [0, 1')            # killed in the middle of a write
    assert read_jsonl(log) == read_jsonl_bytes(whole)
    build(tmp_path, resume=True).run_inprocess(BATCH)
    assert all(line.endswith(b"}") for line in log.read_bytes().splitlines())
    check_log(tmp_path, reference["controller"])


def test_a_checkpoint_older_than_the_log_is_refused(tmp_path):
    with pytest.raises(Crash):
        build(tmp_path, "random", proxy=ParamsProxy(crash_at=21)).run_inprocess(BATCH)
    old = (tmp_path / "searcher.ckpt").read_bytes()
    build(tmp_path, "random", resume=True).run_inprocess(BATCH)
    (tmp_path / "searcher.ckpt").write_bytes(old)
    with pytest.raises(UserError, match="not in the searcher's checkpoint"):
        build(tmp_path, "random", resume=True)


def read_jsonl_bytes(data: bytes):
    return [json.loads(line) for line in data.splitlines()]


def test_an_evaluation_that_raises_is_a_failed_sample(tmp_path):
    class Flaky(ParamsProxy):
        def evaluate(self, spec):
            if self.calls % 5 == 4:
                self.calls += 1
                raise RuntimeError("out of memory")
            return super().evaluate(spec)

    records = build(tmp_path, "random", proxy=Flaky()).run_inprocess(BATCH)
    failed = [r for r in records if r["failed"]]
    assert len(records) == SAMPLES and len(failed) == SAMPLES // 5
    assert all("RuntimeError: out of memory" in r["reason"] for r in failed)
    for r in failed:  # told the worst reward of its batch and those before, never a flattering 0
        so_far = [x["reward"] for x in records if x["i"] // BATCH <= r["i"] // BATCH and not x["failed"]]
        assert r["reward"] == pytest.approx(min(so_far), abs=1e-6)

    class FailsAfterTen(ParamsProxy):
        def evaluate(self, spec):
            if self.calls >= 10:
                self.calls += 1
                raise RuntimeError("the disk with the data went away")
            return super().evaluate(spec)

    with pytest.raises(UserError, match="22 evaluations in a row failed") as err:  # checked at a batch's end
        build(tmp_path / "stops", "random", proxy=FailsAfterTen()).run_inprocess(BATCH)
    assert "the disk with the data went away" in str(err.value)
    logged = read_jsonl(tmp_path / "stops" / "samples.jsonl")
    assert sum(r["failed"] for r in logged) == 22 and len(logged) == 32

    class Broken(ParamsProxy):
        def evaluate(self, spec):
            raise RuntimeError("no such kernel")

    with pytest.raises(RuntimeError, match="no such kernel"):   # everything fails: a bug, not a network
        build(tmp_path / "broken", "random", proxy=Broken()).run_inprocess(BATCH)


# ---- a real SIGKILL -------------------------------------------------------------------------

HELPER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_search_resume import build, ParamsProxy, BATCH
import nas.search.search_loop as loop

run_dir, algorithm, resume, kill_after = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
held = sys.argv[5]
if kill_after:   # SIGKILL ourselves between two lines of one batch's log
    class Killing(loop.JsonlWriter):
        n = 0
        def write_many(self, records):
            for r in records:
                if Killing.n == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                Killing.n += 1
                super().write_many([r])
    loop.JsonlWriter = Killing
# With a marker path: hold still in the 21st evaluation (the third batch's fifth) until killed.
build(run_dir, algorithm, resume, ParamsProxy(hold_at=21 if held else None, held=held)).run_inprocess(BATCH)
"""


def helper(tmp_path, run_dir, algorithm, resume, kill_after=0, held=""):
    script = tmp_path / "helper.py"
    script.write_text(HELPER.format(tests=str(HERE)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(run_dir), algorithm, "1" if resume else "0",
                             str(kill_after), str(held)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_then_resume_twice(reference, tmp_path):
    """Killed by another process while it evaluates (two batches logged), resumed and killed again
    between two lines of a batch's log, resumed to the end: the log is the uninterrupted run's."""
    run_dir, log, held = tmp_path / "run", tmp_path / "run" / "samples.jsonl", tmp_path / "held"
    proc = helper(tmp_path, run_dir, "evolution", False, held=held)
    deadline = time.monotonic() + 120
    while not held.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    first = len(read_jsonl(log))
    assert first == 2 * BATCH

    proc = helper(tmp_path, run_dir, "evolution", True, kill_after=5)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL and len(read_jsonl(log)) == first + 5

    proc = helper(tmp_path, run_dir, "evolution", True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    check_log(run_dir, reference["evolution"])


class _Planted:
    """Unpickling this object creates `marker`: a stand-in for any code a crafted file could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_no_searcher_checkpoint_from_elsewhere_runs_code(tmp_path):
    import hashlib
    import io
    import pickle

    from nas.search.algorithms import CHECKPOINT_MAGIC

    build(tmp_path / "run", "random").run_inprocess(BATCH)
    state = tmp_path / "run" / "searcher.ckpt"
    marker = tmp_path / "ran"
    crafted = pickle.dumps({"format": 1, "state": _Planted(marker)})
    as_torch = io.BytesIO()
    torch.save({"format": 1, "state": _Planted(marker)}, as_torch)
    # a plain pickle; a torch file with a valid checksum (a checksum is no defence, weights_only is)
    for payload, why in [(crafted, "not a searcher checkpoint"),
                         (CHECKPOINT_MAGIC + hashlib.sha256(as_torch.getvalue()).hexdigest().encode() + b"\n"
                          + as_torch.getvalue(), "unreadable searcher checkpoint")]:
        state.write_bytes(payload)
        with pytest.raises(UserError, match=why) as err:
            build(tmp_path / "run", "random", resume=True)
        assert err.value.source == str(state) and not marker.exists()
    # an earlier version's searcher.pkl is named, not read
    state.unlink()
    (tmp_path / "run" / "searcher.pkl").write_bytes(crafted)
    with pytest.raises(UserError, match="searcher.pkl from an earlier version"):
        build(tmp_path / "run", "random", resume=True)
    assert not marker.exists()


def test_a_flipped_byte_in_the_searcher_checkpoint_is_refused_by_name(tmp_path):
    build(tmp_path, "evolution").run_inprocess(BATCH)
    state = tmp_path / "searcher.ckpt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0x01
    state.write_bytes(bytes(data))
    with pytest.raises(UserError, match="checksum does not match") as err:
        build(tmp_path, "evolution", resume=True)
    assert err.value.source == str(state)
