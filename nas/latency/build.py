"""Measure ops and whole networks on this host with ONNX Runtime, interleaved across rounds.

The machine is noisy (10-25% swings between runs): a burst of load hits every op of a round a
little instead of a few ops a lot, because each round visits all ops in a fresh random order and
the statistics are taken over all rounds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from nas.export.onnx import export_onnx, randomize_for_check
from nas.latency.measure import Timing, make_session, random_input
from nas.latency.ops import Op, build_op_module
from nas.core.model import build_model
from nas.core.spec import ArchSpec


@dataclass(frozen=True)
class Schedule:
    """How much timing one item gets: rounds x runs_per_round timed runs after warm-up."""

    rounds: int = 6
    runs_per_round: int = 6
    warmup: int = 5
    rewarm: bool = True  # one untimed run before each op's turn in a round

    @property
    def runs(self) -> int:
        return self.rounds * self.runs_per_round


OP_SCHEDULE = Schedule(rounds=6, runs_per_round=6, warmup=5)        # 36 timed runs per op
MODEL_SCHEDULE = Schedule(rounds=8, runs_per_round=5, warmup=5)     # 40 timed runs per network


def op_onnx(op: Op, seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    module = randomize_for_check(build_op_module(op), seed)
    return export_onnx(module, op.input_shape)


def spec_onnx(spec: ArchSpec, seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    return export_onnx(randomize_for_check(build_model(spec), seed), (1, 3, spec.resolution, spec.resolution))


def time_interleaved(models: Sequence[bytes], threads: int = 1, schedule: Schedule = OP_SCHEDULE,
                     seed: int = 0) -> list[np.ndarray]:
    """Per-model arrays of timed runs (ms), shape (rounds, runs_per_round), interleaved across rounds."""
    sessions = [make_session(m, threads) for m in models]
    feeds = [random_input(s, seed) for s in sessions]
    for s, f in zip(sessions, feeds):
        for _ in range(schedule.warmup):
            s.run(None, f)
    samples = np.zeros((len(sessions), schedule.rounds, schedule.runs_per_round))
    rng = np.random.default_rng(seed)
    for r in range(schedule.rounds):
        for i in rng.permutation(len(sessions)):
            s, f = sessions[i], feeds[i]
            if schedule.rewarm:
                s.run(None, f)  # re-warm the caches after the other models ran
            for j in range(schedule.runs_per_round):
                start = time.perf_counter()
                s.run(None, f)
                samples[i, r, j] = (time.perf_counter() - start) * 1e3
    return list(samples)


def measure_ops(ops: Sequence[Op], threads: int = 1, schedule: Schedule = OP_SCHEDULE, seed: int = 0,
                chunk: int = 64, on_chunk: Callable[[dict[str, Timing]], None] | None = None,
                progress: Callable[[int], None] | None = None) -> dict[str, Timing]:
    """Time every op alone (exported by itself); `on_chunk` gets each chunk's results as they land,
    so an interrupted build keeps what it measured."""
    results: dict[str, Timing] = {}
    unique = list({op.key: op for op in ops}.values())
    for start in range(0, len(unique), chunk):
        part = unique[start:start + chunk]
        models = []
        for op in part:
            models.append(op_onnx(op, seed))
            if progress:
                progress(1)
        timed = time_interleaved(models, threads, schedule, seed)
        got = {op.key: Timing.of(t.ravel()) for op, t in zip(part, timed)}
        results.update(got)
        if on_chunk:
            on_chunk(got)
    return results


def measure_specs(specs: Sequence[ArchSpec], threads: int = 1, schedule: Schedule = MODEL_SCHEDULE,
                  seed: int = 0, progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Whole networks, exported and timed interleaved; per network (rounds, runs_per_round) ms."""
    models = []
    for spec in specs:
        models.append(spec_onnx(spec, seed))
        if progress:
            progress(1)
    return time_interleaved(models, threads, schedule, seed)
