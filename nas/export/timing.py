"""Time exported models with ONNX Runtime: explicit threads, warm-up, robust statistics.

Here, below nas.latency, because the export checks time what they write; the latency tables time
their ops with the same sessions and keep the same `Timing`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True)
class Timing:
    median: float
    p10: float
    p90: float
    n: int

    @classmethod
    def of(cls, samples_ms) -> "Timing":
        a = np.asarray(samples_ms, dtype=float)
        p10, med, p90 = np.percentile(a, [10, 50, 90])
        # Rounded to 10 ns here, so that a table's YAML round trip is exact.
        return cls(round(float(med), 5), round(float(p10), 5), round(float(p90), 5), int(a.size))

    def as_dict(self) -> dict:
        return {"median": self.median, "p10": self.p10, "p90": self.p90, "n": self.n}


def make_session(model: str | bytes | os.PathLike, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with an explicit thread count (never ONNX Runtime's all-cores default)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    return ort.InferenceSession(model, sess_options=opts, providers=[PROVIDER])


def random_input(session: ort.InferenceSession, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def run_once_ms(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> float:
    start = time.perf_counter()
    session.run(None, feeds)
    return (time.perf_counter() - start) * 1e3


def time_session(session: ort.InferenceSession, runs: int = 30, warmup: int = 10, seed: int = 0) -> Timing:
    """Median / p10 / p90 of `runs` timed inferences after `warmup` untimed ones."""
    feeds = random_input(session, seed)
    for _ in range(warmup):
        session.run(None, feeds)
    return Timing.of([run_once_ms(session, feeds) for _ in range(runs)])
