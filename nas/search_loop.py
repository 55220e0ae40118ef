"""Drive one searcher: in-process batches for cheap proxies, Ray Tune trials for training proxies.

Both write the run directory's `samples.jsonl` (one line per evaluated architecture) and
`searcher.pkl` (the algorithm's state, saved after every ask and tell). A resumed run reloads the
state, takes the results of suggestions that were logged but not yet told from the log, and
re-issues the rest: no evaluation is lost and none is logged twice.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nas.errors import UserError
from nas.reward import RewardConfig
from nas.runlog import JsonlWriter, read_jsonl
from nas.searchers import Algorithm, Suggestion, TuneSearcher, load_state, save_state
from nas.space import SearchSpace
from nas.spec import ArchSpec

SAMPLES_FILE = "samples.jsonl"
STATE_FILE = "searcher.pkl"


@dataclass
class Evaluator:
    """Latency from the device, accuracy from the proxy, and the reward that combines them.

    `to_accuracy` maps a proxy result to the accuracy the reward multiplies: a training proxy's
    top-1 as is; a zero-cost score through a map fitted to short training (see nas.search).
    """

    device: Any
    proxy: Any
    reward: RewardConfig
    to_accuracy: Callable[[dict], float] | None = None

    def accuracy_of(self, result: dict) -> float:
        if result.get("failed"):
            return 0.0
        if self.to_accuracy is not None:
            return float(self.to_accuracy(result))
        return float(result["accuracy"])

    def records(self, suggestions: Sequence[Suggestion], specs: Sequence[ArchSpec],
                results: Sequence[dict]) -> list[dict]:
        lat = self.device.predict_many(specs)
        acc = np.array([self.accuracy_of(r) for r in results])
        if self.reward.variance_aware:
            rewards = self.reward.batch(acc, lat[:, 0], lat[:, 1], lat[:, 2])
        else:
            rewards = self.reward.batch(acc, lat[:, 0])
        rewards = np.where([bool(r.get("failed")) for r in results], 0.0, np.atleast_1d(rewards))
        out = []
        for s, spec, r, (ms, p10, p90), a, rw in zip(suggestions, specs, results, lat, acc, rewards):
            out.append({
                "i": s.index, "tokens": list(s.tokens), "arch": spec.to_string(), "arch_hash": spec.content_hash(),
                "latency_ms": round(float(ms), 4), "latency_p10_ms": round(float(p10), 4),
                "latency_p90_ms": round(float(p90), 4), "accuracy": round(float(a), 6),
                "score": _finite_or_none(r.get("score")), "reward": round(float(rw), 6),
                "failed": bool(r.get("failed")), "reason": r.get("reason"),
                "eval_s": round(float(r.get("seconds") or 0.0), 4),
            })
        return out


def _finite_or_none(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


class SearchRun:
    """One search in one run directory; `samples` is the total evaluation budget."""

    def __init__(self, run_dir: str | Path, space: SearchSpace, algorithm: Algorithm, evaluator: Evaluator,
                 samples: int, resume: bool = False, progress: Callable[[int], None] | None = None):
        self.dir = Path(run_dir)
        self.space, self.algorithm, self.evaluator, self.samples = space, algorithm, evaluator, samples
        self.progress = progress
        self.dir.mkdir(parents=True, exist_ok=True)
        state, log = self.dir / STATE_FILE, self.dir / SAMPLES_FILE
        if not resume and (state.exists() or log.exists()):
            raise UserError("already holds a search: pass --resume to continue it, or choose another --out",
                            source=str(self.dir))
        self.logged: dict[int, dict] = {r["i"]: r for r in read_jsonl(log)}
        if resume and state.exists():
            load_state(self.algorithm, state)
        elif self.logged:  # a log without a state: the process died before its first save
            raise UserError("has samples.jsonl but no searcher.pkl; start a new run with another --out",
                            source=str(self.dir))
        self.writer = JsonlWriter(log)
        self.started = time.perf_counter()
        self.offset_s = max((r.get("wall_s", 0.0) for r in self.logged.values()), default=0.0)
        self._drain_logged()

    # ---- bookkeeping ------------------------------------------------------------------------
    def _save(self) -> None:
        save_state(self.algorithm, self.dir / STATE_FILE)

    def _drain_logged(self) -> None:
        """Tell the algorithm the logged results of suggestions it is still waiting for."""
        for i in sorted(self.algorithm.outstanding):
            record = self.logged.get(i)
            if record is not None:
                if tuple(record["tokens"]) != self.algorithm.outstanding[i]:
                    raise UserError(f"sample {i} in the log differs from the searcher's checkpoint",
                                    source=str(self.dir / SAMPLES_FILE))
                self.algorithm.tell(i, record["reward"])
        self._save()

    def _log(self, records: Sequence[dict]) -> None:
        for r in records:
            r["wall_s"] = round(self.offset_s + time.perf_counter() - self.started, 3)
            self.writer.write(r)
            self.logged[r["i"]] = r
        if self.progress:
            self.progress(len(records))

    @property
    def done(self) -> int:
        return self.algorithm.told

    def _ask_batch(self, limit: int) -> list[Suggestion]:
        batch: list[Suggestion] = []
        while len(batch) < limit and self.done + len(batch) < self.samples:
            s = self.algorithm.ask()
            if s is None:
                break
            batch.append(s)
        return batch

    # ---- in-process ---------------------------------------------------------------------------
    def run_inprocess(self, batch_size: int = 16) -> list[dict]:
        """Evaluate in this process, a batch at a time (zero-cost proxies: thousands in minutes)."""
        try:
            while self.done < self.samples:
                batch = self._ask_batch(batch_size)
                if not batch:
                    raise RuntimeError(f"{self.algorithm.name} suggested nothing with results all in")
                self._save()  # every asked suggestion is in the state before it is evaluated
                specs = [self.space.decode(s.tokens) for s in batch]
                results = [self.evaluator.proxy.evaluate(spec) for spec in specs]
                records = self.evaluator.records(batch, specs, results)
                self._log(records)
                for r in records:
                    self.algorithm.tell(r["i"], r["reward"])
                self._save()
        finally:
            self.writer.close()
        return self.records()

    # ---- Ray Tune -----------------------------------------------------------------------------
    def run_on_ray(self, proxy_config, address: str | None = None, cpus: int | None = None,
                   asha: bool = False, max_failures: int = 1, cpus_per_trial: int = 1) -> list[dict]:
        """Each suggestion becomes a Tune trial training the spec (nas.proxies.ray_tune); the
        TuneSearcher scores finished trials with the reward and tells the algorithm."""
        import ray
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler

        from nas.proxies.ray_tune import proxy_trainable

        remaining = self.samples - self.done
        if remaining <= 0:
            self.writer.close()
            return self.records()
        started_here = _init_ray(address, cpus)
        specs_by_index: dict[int, ArchSpec] = {}

        def on_result(s: Suggestion, result: dict | None, error: bool) -> float:
            spec = specs_by_index.pop(s.index, None) or self.space.decode(s.tokens)
            failed = error or not result or bool(result.get("failed", False))
            accuracy = 0.0 if failed else float(result.get("accuracy", 0.0))
            r = {"accuracy": accuracy, "score": accuracy, "failed": failed,
                 "reason": (result or {}).get("reason") or ("trial error" if error else None),
                 "seconds": (result or {}).get("seconds", 0.0)}
            record = self.evaluator.records([s], [spec], [r])[0]
            self._log([record])
            return record["reward"]

        class _Searcher(TuneSearcher):
            def suggest(inner, trial_id):  # noqa: N805 - adds the spec and proxy to each trial
                config = super().suggest(trial_id)
                if config is None:
                    return None
                spec = self.space.decode(config["tokens"])
                specs_by_index[config["index"]] = spec
                self._save()
                return {**config, "spec": spec.to_dict(), "proxy": proxy_config.to_dict()}

            def on_trial_complete(inner, trial_id, result=None, error=False):  # noqa: N805
                super().on_trial_complete(trial_id, result, error)
                self._save()

        searcher = _Searcher(self.algorithm, on_result, metric="accuracy", mode="max", limit=self.samples)
        total_epochs = max(1, getattr(proxy_config.train, "epochs", 1) or 1)
        scheduler = ASHAScheduler(max_t=total_epochs, grace_period=1) if asha and total_epochs > 1 else None
        attempt = len(list(self.dir.glob("tune-*")))
        trainable = tune.with_resources(proxy_trainable, {"cpu": cpus_per_trial})
        try:
            tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining, scheduler=scheduler,
                                            reuse_actors=True, metric="accuracy", mode="max"),
                run_config=tune.RunConfig(name=f"tune-{attempt}", storage_path=str(self.dir.resolve()),
                                          failure_config=tune.FailureConfig(max_failures=max_failures),
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1), verbose=0),
            ).fit()
        finally:
            self.writer.close()
            if started_here:
                ray.shutdown()
        return self.records()

    def records(self) -> list[dict]:
        return [self.logged[i] for i in sorted(self.logged)]


def _init_ray(address: str | None, cpus: int | None) -> bool:
    """Join a cluster at `address`, or start a local Ray with a short temp dir; True if started here."""
    import os
    import tempfile

    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    else:
        temp = tempfile.mkdtemp(prefix="ray_", dir="/tmp")  # socket paths must stay under ~107 bytes
        ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, _temp_dir=temp,
                 log_to_driver=False, logging_level="WARNING")
    return True
