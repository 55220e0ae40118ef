"""Drive one searcher: in-process batches for cheap proxies, Ray Tune trials for training proxies.

Both write the run directory's `samples.jsonl` (one line per evaluated architecture, fsynced) and
`searcher.ckpt` (the algorithm's state, saved after every ask and tell, before the evaluations it
covers start). A resumed run reloads the state, tells the algorithm the logged results of
suggestions it was still waiting for (in the order they were logged, which is the order they were
told), and re-issues the rest: no evaluation is lost and none is logged twice. In-process, the
re-issued suggestions form a batch of their own, as they did before the interruption, so a
resumed run continues exactly as an uninterrupted one with the same seed would have.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nas.runtime.errors import UserError
from nas.search.reward import RewardConfig
from nas.runtime.jsonl import JsonlWriter, read_jsonl
from nas.runtime.session import ray_session
from nas.search.algorithms import Algorithm, Suggestion, read_state, save_state
from nas.core.space import SearchSpace
from nas.core.spec import ArchSpec
from nas.accuracy.tune_trials import _total_epochs, proxy_trainable
from nas.runtime.ray_tune import run_tune, trial_error

SAMPLES_FILE = "samples.jsonl"
MAX_FAILED_IN_A_ROW = 20  # then the proxy or the data is broken, not one network: the run stops
STATE_FILE = "searcher.ckpt"
PREVIOUS_STATE_FILE = STATE_FILE + ".prev"  # the one before the last save (save_state keeps it)
OLD_STATE_FILE = "searcher.pkl"  # earlier versions' pickle: never read (it could run code)


@dataclass
class Evaluator:
    """Latency from the device, accuracy from the proxy, and the reward that combines them.

    `to_accuracy` maps a proxy result to the accuracy the reward multiplies: a training proxy's
    top-1 as is; a zero-cost score through a map onto an accuracy scale (nas.search fits one to
    a few short trainings). A failed evaluation scores accuracy 0; the search run then gives it the
    worst reward seen so far (`SearchRun`), so a failure never looks better than a network.
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

    def evaluate(self, spec: ArchSpec) -> dict:
        """The proxy's result; an exception in it (one network's problem) becomes a failed result.

        A UserError (bad data path, bad flag) concerns every network and propagates.
        """
        start = time.perf_counter()
        try:
            return self.proxy.evaluate(spec)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - recorded as the sample's reason
            return {"score": None, "accuracy": None, "failed": True, "error": err,
                    "reason": f"{type(err).__name__}: {err}"[:300], "seconds": time.perf_counter() - start}

    def evaluate_many(self, specs: Sequence[ArchSpec]) -> list[dict]:
        """A batch in one call where the proxy can (the ImageNet models: microseconds a network); if
        that fails for one network's sake, each on its own, so only that one is marked failed."""
        many = getattr(self.proxy, "evaluate_many", None)
        if many is not None:
            try:
                return many(specs)
            except UserError:
                raise
            except Exception:  # noqa: BLE001 - found again, and recorded, network by network
                pass
        return [self.evaluate(spec) for spec in specs]

    def records(self, suggestions: Sequence[Suggestion], specs: Sequence[ArchSpec],
                results: Sequence[dict]) -> list[dict]:
        lat = self.device.predict_many(specs)
        failed = np.array([bool(r.get("failed")) for r in results])
        acc = np.array([self.accuracy_of(r) for r in results])
        if self.reward.variance_aware:
            rewards = self.reward.batch(acc, lat[:, 0], lat[:, 1], lat[:, 2])
        else:
            rewards = self.reward.batch(acc, lat[:, 0])
        rewards = np.where(failed, 0.0, np.atleast_1d(rewards))
        out = []
        for s, spec, r, (ms, p10, p90), a, rw in zip(suggestions, specs, results, lat, acc, rewards):
            out.append({
                "i": s.index, "tokens": list(s.tokens), "arch": spec.to_string(), "arch_hash": spec.content_hash(),
                "latency_ms": round(float(ms), 4), "latency_p10_ms": round(float(p10), 4),
                "latency_p90_ms": round(float(p90), 4), "accuracy": round(float(a), 6),
                "score": _finite_or_none(r.get("score")), "reward": round(float(rw), 6),
                "failed": bool(r.get("failed")), "reason": r.get("reason"),
                "eval_s": round(float(r.get("seconds") or 0.0), 4),
                **({"accuracy_source": r["accuracy_source"]} if r.get("accuracy_source") else {}),
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
        in_order = read_jsonl(log)   # a torn last line (killed mid-write) is not a sample
        self.logged: dict[int, dict] = {}
        for r in in_order:
            self.logged.setdefault(r["i"], r)
        if resume and not state.exists() and (self.dir / OLD_STATE_FILE).exists():
            raise UserError(f"holds {OLD_STATE_FILE} from an earlier version, a pickle this version does not read "
                            f"(a pickle can run code); start a new run with another --out", source=str(self.dir))
        if resume and (state.exists() or state.is_symlink()):
            try:
                saved = read_state(state, advice=None)
            except UserError as err:
                raise err.reworded(f"{err.message}; {self._previous_copy(in_order)}") from None
            self.algorithm.load_state_dict(saved)
        elif self.logged:  # a log without a state: the process died before its first save
            raise UserError(f"has samples.jsonl but no {STATE_FILE}; {self._previous_copy(in_order)}",
                            source=str(self.dir))
        self.started = time.perf_counter()
        self.offset_s = max((r.get("wall_s", 0.0) for r in self.logged.values()), default=0.0)
        self._writer: JsonlWriter | None = None
        self._any_ok = any(not r.get("failed") for r in self.logged.values())
        self._failed_in_a_row = 0
        self._drain_logged(in_order)

    # ---- bookkeeping ------------------------------------------------------------------------
    def _save(self) -> None:
        save_state(self.algorithm, self.dir / STATE_FILE)

    def _drain_logged(self, in_order: Sequence[dict]) -> None:
        """Tell the algorithm the logged results of suggestions it is still waiting for."""
        a = self.algorithm
        for record in in_order:
            i = record["i"]
            if i in a.outstanding:
                self._check_tokens(record, a.outstanding[i])
                a.tell(i, record["reward"])
            elif i >= a.next_index:
                raise UserError(f"sample {i} is in the log but not in the searcher's checkpoint (an older "
                                f"checkpoint?); start a new run with another --out", source=str(self.dir))
        self._save()

    def _previous_copy(self, in_order: Sequence[dict]) -> str:
        """What to do about a damaged or missing searcher.ckpt: copy searcher.ckpt.prev over it where that
        copy is whole and agrees with the log (resuming from it then re-issues only samples the log lacks,
        as any resume does), else start anew. Said, not done: a checkpoint damaged on disk is worth a look."""
        state, previous = self.dir / STATE_FILE, self.dir / PREVIOUS_STATE_FILE
        if not (previous.exists() or previous.is_symlink()):
            return "start a new run with another --out"
        why = self._why_not(previous, in_order)
        if why:
            return f"the previous copy {previous} cannot stand in ({why}); start a new run with another --out"
        return (f"the previous copy {previous} is whole and agrees with {SAMPLES_FILE}: resume from it with "
                f"`cp {shlex.quote(str(previous))} {shlex.quote(str(state))}` and --resume again "
                f"(no sample is lost or repeated)")

    def _why_not(self, previous: Path, in_order: Sequence[dict]) -> str | None:
        """Why a checkpoint cannot resume this log (None: it can): unreadable, another searcher, a
        logged sample it never asked or asked with other tokens, or one it counts as told that the log lacks."""
        try:
            saved = read_state(previous, advice=None)
        except UserError as err:
            return err.message
        try:
            if saved["name"] != self.algorithm.name:
                return f"it is the {saved['name']!r} searcher's"
            next_index, outstanding = int(saved["next_index"]), dict(saved["outstanding"])
            logged = set()
            for record in in_order:
                i = record["i"]
                logged.add(i)
                if i >= next_index:
                    return f"sample {i} is in the log but not in it"
                if i in outstanding and tuple(record["tokens"]) != tuple(outstanding[i]):
                    return f"sample {i} in the log differs from it"
            told = [i for i in range(next_index) if i not in outstanding and i not in logged]
            if told:
                return f"it counts sample {told[0]} as done, which the log lacks"
        except (KeyError, TypeError, ValueError, AttributeError):
            return "not a searcher state"
        return None

    def _check_tokens(self, record: dict, tokens: tuple[int, ...]) -> None:
        if tuple(record["tokens"]) != tuple(tokens):
            raise UserError(f"sample {record['i']} in the log differs from the searcher's checkpoint (another "
                            f"seed, space or searcher?)", source=str(self.dir / SAMPLES_FILE))

    def _worst_reward(self, batch: Sequence[dict]) -> float:
        """The worst reward of the networks logged so far and of this batch's, 0 before any."""
        return min((r["reward"] for r in [*self.logged.values(), *batch] if not r.get("failed")), default=0.0)

    def _log(self, records: Sequence[dict]) -> None:
        # A failed sample is told the worst reward so far: 0 would rank it above every network with a
        # negative reward (TuNAS's) and, with accuracies, pull the search towards whatever fails.
        for r in records:
            if r["failed"]:
                r["reward"] = round(self._worst_reward(records), 6)
        if self._writer is None:
            self._writer = JsonlWriter(self.dir / SAMPLES_FILE)
        wall = round(self.offset_s + time.perf_counter() - self.started, 3)
        for r in records:
            r["wall_s"] = wall
        self._writer.write_many(list(records))   # on disk before the algorithm is told
        for r in records:
            self.logged[r["i"]] = r
            self._failed_in_a_row = self._failed_in_a_row + 1 if r["failed"] else 0
        if self.progress:
            self.progress(len(records))

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def done(self) -> int:
        return self.algorithm.told

    def _ask_batch(self, limit: int) -> list[Suggestion]:
        # Re-issued suggestions were one batch before the interruption: keep them one now, so the
        # algorithm hears their results before it proposes anything new, as it did then.
        pending = self.algorithm.pending_reissue
        if pending:
            limit = pending
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
                records = self._evaluate(batch)
                for r in records:
                    self.algorithm.tell(r["i"], r["reward"])
                self._save()
                if self._failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                    last = records[-1]
                    raise UserError(f"{self._failed_in_a_row} evaluations in a row failed (the last: "
                                    f"{last['reason']}); fix the cause, then continue with --resume",
                                    source=str(self.dir / SAMPLES_FILE))
        finally:
            self._close()
        return self.records()

    def _evaluate(self, batch: Sequence[Suggestion]) -> list[dict]:
        """Evaluate and log a batch; its records, in batch order."""
        specs = [self.space.decode(s.tokens) for s in batch]
        results = self.evaluator.evaluate_many(specs)
        if not self._any_ok and all(r.get("error") is not None for r in results):
            raise results[0]["error"]  # nothing has ever evaluated: a broken proxy, not a bad network
        self._any_ok = self._any_ok or any(not r.get("failed") for r in results)
        records = self.evaluator.records(batch, specs, results)
        self._log(records)
        return records

    # ---- Ray Tune -----------------------------------------------------------------------------
    def run_on_ray(self, proxy_config, address: str | None = None, cpus: int | None = None,
                   asha: bool = False, max_failures: int = 1, cpus_per_trial: int = 1,
                   trainable: Callable[[dict], None] | None = None) -> list[dict]:
        """Each suggestion becomes a Tune trial training the spec (nas.accuracy.tune_trials); the
        TuneSearcher scores finished trials with the reward and tells the algorithm.

        Local Ray with `cpus` CPUs unless `address` names a cluster. A trial that raises is retried
        `max_failures` times, then logged as failed (the worst reward so far, its error as the reason) and the
        search goes on. With `asha`, poor trials stop after their first epoch and are scored on the
        accuracy they reached. `trainable` replaces `proxy_trainable`: a function trainable whose
        config holds index, tokens, arch, spec (a dict) and proxy (a ProxyConfig dict), reporting
        `accuracy` and, when the network diverged, `failed`.
        """
        import ray  # deferred: Ray takes 1-5 s to load
        from ray.tune.schedulers import ASHAScheduler  # deferred: Ray takes 1-5 s to load

        from nas.search.algorithms import TuneSearcher  # deferred: TuneSearcher is built on Ray (seconds to load)

        remaining = self.samples - self.done
        if remaining <= 0:
            return self.records()
        if proxy_config.threads is None:  # each trial's torch uses exactly the CPUs Tune gave it
            proxy_config = replace(proxy_config, threads=cpus_per_trial)
        proxy_dict = proxy_config.to_dict()
        if address is None and trainable is None:
            from nas.accuracy.datasets import open_source  # deferred: loads torch

            open_source(proxy_config.data.dataset, proxy_config.data.path)  # a bad --data: one error, not N trials
        attempt = len(list(self.dir.glob("tune-*")))
        experiment = self.dir.resolve() / f"tune-{attempt}"

        trials = _trials()

        def on_result(s: Suggestion, result: dict | None, error: bool) -> float:
            failed = error or not result or bool(result.get("failed", False))
            if error:
                reason = trial_error(trials.by_index[s.index]) if s.index in trials.by_index else None
                reason = reason or "trial error"
            else:
                reason = (result or {}).get("reason") or ("no result" if not result else None)
            r = {"accuracy": 0.0 if failed else float(result.get("accuracy", 0.0)),
                 "score": None if failed else result.get("accuracy"), "failed": failed,
                 "reason": reason if failed else None, "seconds": (result or {}).get("seconds", 0.0)}
            record = self.evaluator.records([s], [self.space.decode(s.tokens)], [r])[0]
            self._log([record])
            return record["reward"]

        def extra_config(s: Suggestion) -> dict:
            return {"spec": self.space.decode(s.tokens).to_dict(), "proxy": proxy_dict}

        searcher = TuneSearcher(self.algorithm, on_result, metric="accuracy", mode="max", limit=self.samples,
                                extra_config=extra_config, state_path=self.dir / STATE_FILE)
        total_epochs = _total_epochs(proxy_config)
        scheduler = ASHAScheduler(max_t=total_epochs, grace_period=1) if asha and total_epochs > 1 else None
        try:
            with ray_session(address, cpus):
                # As many suggestions in flight as trials can run: evolution's parents stay fresh.
                slots = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial))
                run_tune(trainable or proxy_trainable, name=experiment.name, storage=experiment.parent,
                         resources={"cpu": cpus_per_trial}, search_alg=searcher, num_samples=remaining,
                         scheduler=scheduler, metric="accuracy", mode="max", max_concurrent=slots,
                         max_failures=max_failures, callbacks=[trials], trial_dirname_creator=_trial_dirname)
        finally:
            self._close()
        if self.done < self.samples:  # never continue the pipeline on a search that stopped short
            raise UserError(f"Ray Tune ended after {self.done} of {self.samples} samples; continue with --resume",
                            source=str(self.dir))
        return self.records()

    def records(self) -> list[dict]:
        return [self.logged[i] for i in sorted(self.logged)]


def _trials():
    """A Tune callback that remembers each sample's trial when it starts: the searcher is told that
    a trial failed before any callback hears of it, and the trial holds the exception."""
    from ray.tune import Callback  # deferred: Ray takes 1-5 s to load

    class Trials(Callback):
        def __init__(self):
            self.by_index: dict[int, object] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.by_index[trial.config["index"]] = trial

    return Trials()


def _trial_dirname(trial) -> str:
    return f"sample-{trial.config['index']:05d}-{trial.trial_id}"  # the config's arch string is too long
