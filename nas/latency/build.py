"""Measure ops and whole networks on this host, interleaved across rounds, with any backend
(nas.latency.backend: ONNX Runtime or LiteRT, fp32 or int8; ONNX Runtime fp32 unless told).

The machine is noisy (10-25% swings between runs): a burst of load hits every op of a round a
little instead of a few ops a lot, because each round visits all ops in a fresh random order and
the statistics are taken over all rounds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from nas.latency.backend import Backend, OnnxBackend
from nas.export.timing import Timing
from nas.latency.ops import Op
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
    return OnnxBackend().op_model(op, seed)


def spec_onnx(spec: ArchSpec, seed: int = 0) -> bytes:
    return OnnxBackend().spec_model(spec, seed)


def time_interleaved(models: Sequence[bytes], threads: int = 1, schedule: Schedule = OP_SCHEDULE,
                     seed: int = 0, backend: Backend | None = None) -> list[np.ndarray]:
    """Per-model arrays of timed runs (ms), shape (rounds, runs_per_round), interleaved across rounds."""
    backend = backend or OnnxBackend()
    began = time.perf_counter()
    runs = [backend.runner(m, threads, seed) for m in models]
    for run in runs:
        for _ in range(schedule.warmup):
            run()
    samples = np.zeros((len(runs), schedule.rounds, schedule.runs_per_round))
    rng = np.random.default_rng(seed)
    for r in range(schedule.rounds):
        for i in rng.permutation(len(runs)):
            run = runs[i]
            if schedule.rewarm:
                run()  # re-warm the caches after the other models ran
            for j in range(schedule.runs_per_round):
                start = time.perf_counter()
                run()
                samples[i, r, j] = (time.perf_counter() - start) * 1e3
    backend.stats["time_s"] += time.perf_counter() - began
    return list(samples)


def measure_ops(ops: Sequence[Op], threads: int = 1, schedule: Schedule = OP_SCHEDULE, seed: int = 0,
                chunk: int = 64, on_chunk: Callable[[dict[str, Timing]], None] | None = None,
                progress: Callable[[int], None] | None = None, backend: Backend | None = None) -> dict[str, Timing]:
    """Time every op alone (converted by itself); `on_chunk` gets each chunk's results as they land,
    so an interrupted build keeps what it measured (and, where conversions are cached, what it converted)."""
    backend = backend or OnnxBackend()
    results: dict[str, Timing] = {}
    unique = list({op.key: op for op in ops}.values())
    for start in range(0, len(unique), chunk):
        part = unique[start:start + chunk]
        models = []
        for op in part:
            models.append(backend.op_model(op, seed))
            if progress:
                progress(1)
        timed = time_interleaved(models, threads, schedule, seed, backend)
        got = {op.key: Timing.of(t.ravel()) for op, t in zip(part, timed)}
        results.update(got)
        if on_chunk:
            on_chunk(got)
    return results


def measure_specs(specs: Sequence[ArchSpec], threads: int = 1, schedule: Schedule = MODEL_SCHEDULE,
                  seed: int = 0, progress: Callable[[int], None] | None = None, backend: Backend | None = None,
                  cache: bool = True) -> list[np.ndarray]:
    """Whole networks, converted and timed interleaved; per network (rounds, runs_per_round) ms.
    `cache=False` for networks seen once (validate's samples): the cache is for what a rebuild reuses."""
    backend = backend or OnnxBackend()
    models = []
    for spec in specs:
        models.append(backend.spec_model(spec, seed, cache=cache))
        if progress:
            progress(1)
    return time_interleaved(models, threads, schedule, seed, backend)
