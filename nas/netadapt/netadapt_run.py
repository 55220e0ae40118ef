"""The NetAdapt run: seed -> iterations -> final fine-tune, each step logged and checkpointed in its directory.

Each iteration proposes, for every expansion layer and every bottleneck group (`nas.netadapt.surgery`),
the widest width that cuts the predicted latency by delta x the seed's latency (less on the last step:
just what the target needs); each proposal inherits the largest-L2 filters, is fine-tuned for T steps
and scored on the held-out split, and the best one (`nas.netadapt.proposals.proposal_score`) is kept.
The run holds the lock of its directory throughout, so a second process there is refused at once.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from contextlib import ExitStack, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import torch

from nas.accuracy.proxy_config import DataConfig
from nas.budgets import NetAdaptBudget
from nas.core.spec import ArchSpec, save_spec
from nas.netadapt.checkpoints import LOG_NAME, RunLog
from nas.netadapt.netadapt_config import NetAdaptConfig, default_out, make_config, stream_seed
from nas.netadapt.finetune import ProxyTask, finetune_in_process, finetune_with_ray
from nas.netadapt.proposals import choose, make_proposals, may_win, predict_ms, proposal_score
from nas.netadapt.surgery import floor_widths, knobs_of
from nas.runtime.errors import UserError
from nas.runtime.files import load_state, save_state
from nas.runtime.lock import run_lock
from nas.runtime.session import ray_session
from nas.runtime.stats import standard_error

log = logging.getLogger(__name__)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class NetAdapt:
    """One run in `out`: seed -> iterations -> final; every step logged and checkpointed."""

    def __init__(self, spec: ArchSpec, config: NetAdaptConfig, out: Path, device=None,
                 weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None, progress: bool = True):
        from nas.latency.devices import get_device  # deferred: loads onnxruntime

        self.spec, self.config, self.out, self.progress = spec, config, Path(out), progress
        self.device = device if device is not None else get_device(config.device)
        self.weights = weights
        self.runlog = RunLog(self.out, spec.name)
        self.log = self.runlog.path
        self.knobs = knobs_of(spec)
        self.floors, self.floor_spec = floor_widths(spec, self.knobs)

    def say(self, message: str) -> None:
        """Progress: info for a command, debug for a caller that asked for none (progress=False)."""
        log.log(logging.INFO if self.progress else logging.DEBUG, "%s", message)

    def weights_tag(self) -> str:
        if self.weights is None:
            return "trained"
        if isinstance(self.weights, Mapping):
            blob = b"".join(v.cpu().numpy().tobytes() for v in self.weights.values())
            return "state:" + hashlib.sha256(blob).hexdigest()[:16]
        path = Path(self.weights)
        return f"file:{_file_digest(path) if path.is_file() else path}"

    def start_record(self, seed_ms: float, floor_ms: float) -> dict[str, Any]:
        c = self.config
        return {"type": "start", "identity": {**c.identity(), "seed_spec": self.spec.content_hash(),
                                              "weights": self.weights_tag()},
                "seed_spec": self.spec.to_dict(), "seed_ms": seed_ms, "floor_ms": floor_ms,
                "floor_spec": self.floor_spec.to_dict(), "delta_ms": c.delta * seed_ms, "target_ms": c.target_ms,
                "device": c.device}

    def lock(self):
        """The run directory's lock; inside the pipeline that is run_dir/netadapt, a file of its own
        beside the pipeline's lock on run_dir (one process must not take one lock twice)."""
        return run_lock(self.out, what=f"NetAdapt of {self.spec.name}",
                        resume_hint="wait for it to finish, or stop it and continue it with --resume")

    def refuse_a_second_start(self, resume: bool) -> None:
        if self.log.exists() and not resume:
            raise UserError(f"{LOG_NAME} exists: pass --resume to continue that run, or choose another --out",
                            source=str(self.out))

    # -- entry point ----------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict[str, Any]:
        started = time.perf_counter()
        c = self.config
        with ExitStack() as held:
            # An existing directory is locked before any work, so a second process there stops at once;
            # a new one only once the inputs are checked, so that a bad input leaves no directory behind.
            locked = self.out.is_dir()
            if locked:
                held.enter_context(self.lock())
            self.refuse_a_second_start(resume)
            seed_ms, floor_ms = (float(v) for v in predict_ms(self.device, [self.spec, self.floor_spec]))
            if c.target_ms >= seed_ms:
                if not locked:
                    held.enter_context(self.lock())
                return self.unchanged(seed_ms, floor_ms, started)
            if c.target_ms < floor_ms:
                raise UserError(
                    f"target {c.target_ms:g} ms is below the floor of {floor_ms:.3f} ms that NetAdapt can reach on "
                    f"{c.device} (every bottleneck and expansion at its narrowest admissible width, mostly 8); "
                    f"the seed predicts {seed_ms:.3f} ms", setting="target_ms")
            task = ProxyTask(c)  # data and weights problems surface before the log is written
            seed_state = self.seed_weights(task)
            if not locked:
                held.enter_context(self.lock())
                self.refuse_a_second_start(resume)  # a run that started here meanwhile
            start = self.start_record(seed_ms, floor_ms)
            with self.runlog:
                return self.iterate(task, seed_ms, seed_state, start, resume, started)

    def iterate(self, task: ProxyTask, seed_ms: float, seed_state, start: dict[str, Any], resume: bool,
                started: float) -> dict[str, Any]:
        c = self.config
        records = self.runlog.open(start, resume)
        iterations = [r for r in records if r["type"] == "iteration"]
        final = next((r for r in records if r["type"] == "final"), None)
        if final is not None:
            self.say(f"resumed: the run in {self.out} is complete")
            return self.result(final, iterations, start, started)
        if iterations:
            last = iterations[-1]
            spec, state = self.runlog.load_checkpoint(last)
            self.say(f"resumed after iteration {last['iteration']}: {last['latency_ms']:.3f} ms, "
                     f"top-1 {last['accuracy']:.4f}")
        else:
            spec, state, last = self.seed_iteration(task, seed_ms, seed_state)
            iterations.append(last)
        current_ms, current_acc = last["latency_ms"], last["accuracy"]
        with (ray_session(c.address) if c.parallel == "ray" else nullcontext()):
            while current_ms > c.target_ms:
                k = last["iteration"] + 1
                if c.max_iterations is not None and k > c.max_iterations:
                    self.say(f"stopped after {k - 1} iteration(s) (--max-iterations): {current_ms:.3f} ms > "
                             f"{c.target_ms:g} ms; --resume continues")
                    return self.result(None, iterations, start, started)
                spec, state, last = self.iteration(task, k, spec, state, current_ms, current_acc, start)
                iterations.append(last)
                current_ms, current_acc = last["latency_ms"], last["accuracy"]
        final = self.finish(task, spec, state, last)
        return self.result(final, iterations, start, started)

    # -- steps ----------------------------------------------------------------------------------
    def seed_weights(self, task: ProxyTask) -> dict[str, torch.Tensor] | None:
        """The given seed weights, checked against the spec adapted to the proxy data (None: train it)."""
        if self.weights is None:
            return None
        source = None if isinstance(self.weights, Mapping) else str(self.weights)
        state = dict(self.weights) if source is None else load_state(source, setting="weights", finite=True)
        try:
            task.model(self.spec, state)
        except (RuntimeError, KeyError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"weights do not fit the spec adapted to the proxy data: {first}", source=source,
                            setting="weights") from None
        return state

    def seed_iteration(self, task: ProxyTask, seed_ms: float, seed_state: dict[str, torch.Tensor] | None):
        c = self.config
        t0 = time.perf_counter()
        if seed_state is None:
            self.say(f"training the seed {self.spec.name} on the proxy task ...")
            outcome = task.run(self.spec, None, c.train, c.seed)
            if outcome["failed"]:
                raise UserError(f"the seed diverged in training ({outcome['reason']}): lower the learning rate")
        else:
            outcome = task.run(self.spec, seed_state, None, c.seed)
        n = task.val_images
        se = standard_error(outcome["accuracy"], n)
        record = self.checkpoint(0, self.spec, outcome["state"], seed_ms, outcome["accuracy"], t0,
                                 source=self.weights_tag(), steps=outcome["steps"],
                                 noise={"n_val": n, "accuracy": outcome["accuracy"], "se": se})
        self.say(f"seed: {seed_ms:.3f} ms on {c.device}, top-1 {outcome['accuracy']:.4f} ± {se:.4f} "
                 f"(1 SE on {n} images; target {c.target_ms:g} ms, delta {c.delta * seed_ms:.3f} ms)")
        return self.spec, outcome["state"], record

    def iteration(self, task: ProxyTask, k: int, spec: ArchSpec, state, current_ms: float, current_acc: float,
                  start: dict[str, Any]):
        c = self.config
        t0 = time.perf_counter()
        required = min(start["delta_ms"], current_ms - c.target_ms)
        proposals, fallback = make_proposals(spec, self.knobs, self.floors, self.device, current_ms, required)
        if not proposals:
            raise UserError(f"no width can shrink further at {current_ms:.3f} ms (target {c.target_ms:g} ms, "
                            f"floor {start['floor_ms']:.3f} ms): the device's latencies do not fall with width here",
                            setting="target_ms")
        self.say(f"iteration {k}: {len(proposals)} proposals cutting >= {required:.3f} ms"
                 + (" (fallback: largest cuts)" if fallback else ""))
        seed = stream_seed(c.seed, k)
        if c.parallel == "ray":
            source = finetune_with_ray(c, spec, state, proposals, seed, self.out, f"iter{k:03d}")
        else:
            source = finetune_in_process(task, spec, state, proposals, seed, self.progress)
        n = task.val_images
        outcomes: list[dict[str, Any]] = []
        for p, o in zip(proposals, source):
            o["score"] = proposal_score(p, o, current_acc, current_ms, c.select)
            outcomes.append(o)
            keep = may_win(outcomes, c.select, n)
            for i, kept in enumerate(outcomes):  # only weights that can still win stay in memory
                if i not in keep:
                    kept.pop("state", None)
        best, noise = choose(proposals, outcomes, c.select, n)
        if best < 0:
            raise UserError(f"every proposal of iteration {k} diverged in fine-tuning "
                            f"({outcomes[0]['reason'] or 'non-finite accuracy'}): lower the learning rate")
        winner, won = proposals[best], outcomes[best]
        new_state = won["state"] if "state" in won else load_state(won["state_path"])
        if c.parallel == "ray":
            shutil.rmtree(self.out / "proposals" / f"iter{k:03d}", ignore_errors=True)
            shutil.rmtree(self.out / "tune" / f"iter{k:03d}", ignore_errors=True)
        among = set(noise["tied"])
        rows = [{**p.summary(), **{key: o.get(key) for key in ("accuracy", "failed", "reason", "score", "seconds")},
                 "tied": p.knob.label in among} for p, o in zip(proposals, outcomes)]
        record = self.checkpoint(k, winner.spec, new_state, winner.latency_ms, won["accuracy"], t0,
                                 chosen=rows[best], proposals=rows, required_ms=required, fallback=fallback,
                                 select=c.select, noise=noise)
        self.say(f"iteration {k}: {winner.latency_ms:.3f} ms, top-1 {won['accuracy']:.4f} ± {noise['se']:.4f} "
                 f"(1 SE on {n} images; {winner.knob.label} {winner.before}->{winner.width}; "
                 f"{time.perf_counter() - t0:.0f} s); {tie_note(noise, c.select)}")
        return winner.spec, new_state, record

    def finish(self, task: ProxyTask, spec: ArchSpec, state, last: dict[str, Any]) -> dict[str, Any]:
        c = self.config
        accuracy, steps = last["accuracy"], 0
        if c.final_steps:
            self.say(f"final fine-tune: {c.final_steps} steps ...")
            outcome = task.run(spec, state, c.finetune(c.final_steps), stream_seed(c.seed, 1 << 20))
            if outcome["failed"]:
                self.say(f"the final fine-tune diverged ({outcome['reason']}): keeping the last iteration's weights")
            else:
                state, accuracy, steps = outcome["state"], outcome["accuracy"], outcome["steps"]
        final_spec = replace(spec, name=f"{self.spec.name}-netadapt")
        paths = {"spec_path": self.out / "final.yaml", "proxy_spec_path": self.out / "final_proxy.yaml",
                 "weights_path": self.out / "final.pt"}
        save_state(state, paths["weights_path"])
        save_spec(task.adapt(final_spec), paths["proxy_spec_path"])
        save_spec(final_spec, paths["spec_path"])
        record = {"type": "final", "iteration": last["iteration"], "spec": final_spec.to_dict(),
                  "arch": final_spec.to_string(), "latency_ms": last["latency_ms"], "accuracy": accuracy,
                  "final_steps": steps, **{k: str(v) for k, v in paths.items()}}
        self.runlog.append(record)
        self.say(f"final: {last['latency_ms']:.3f} ms, top-1 {accuracy:.4f} -> {paths['spec_path']}")
        return record

    def checkpoint(self, k: int, spec: ArchSpec, state, latency_ms: float, accuracy: float, t0: float,
                   **extra: Any) -> dict[str, Any]:
        """Files first, then the log line: a line in the log always has its checkpoint."""
        files = self.runlog.save_checkpoint(k, spec, state)
        record = {"type": "iteration", "iteration": k, "spec": spec.to_dict(), "arch": spec.to_string(),
                  "latency_ms": latency_ms, "accuracy": accuracy, "checkpoint": files,
                  "seconds": round(time.perf_counter() - t0, 3), **extra}
        self.runlog.append(record)
        return record

    # -- results --------------------------------------------------------------------------------
    def unchanged(self, seed_ms: float, floor_ms: float, started: float) -> dict[str, Any]:
        path = self.out / "final.yaml"
        save_spec(self.spec, path)
        message = (f"target {self.config.target_ms:g} ms >= the seed's {seed_ms:.3f} ms on {self.config.device}: "
                   f"the seed is returned unchanged")
        self.say(message)
        return {"latency_ms": seed_ms, "spec_path": str(path), "iterations": 0, "accuracy": None,
                "seed_latency_ms": seed_ms, "seed_accuracy": None, "target_ms": self.config.target_ms,
                "floor_ms": floor_ms, "device": self.config.device, "reached": True, "unchanged": True,
                "weights_path": None, "proxy_spec_path": None, "log": None, "out": str(self.out),
                "arch": self.spec.to_string(), "arch_hash": self.spec.content_hash(), "spec": self.spec,
                "history": [], "message": message, "wall_s": time.perf_counter() - started}

    def result(self, final: dict[str, Any] | None, iterations: list[dict[str, Any]], start: dict[str, Any],
               started: float) -> dict[str, Any]:
        last = iterations[-1]
        if final is not None:
            spec = self.runlog.spec_of(final)
            paths = {k: final[k] for k in ("spec_path", "proxy_spec_path", "weights_path")}
            accuracy, reached = final["accuracy"], True
            message = f"reached {final['latency_ms']:.3f} ms <= {self.config.target_ms:g} ms"
        else:
            spec = self.runlog.spec_of(last)
            paths = {"spec_path": str(self.out / last["checkpoint"]["spec"]), "proxy_spec_path": None,
                     "weights_path": str(self.out / last["checkpoint"]["weights"])}
            accuracy, reached = last["accuracy"], False
            message = f"not finished: {last['latency_ms']:.3f} ms > {self.config.target_ms:g} ms"
        history = [{"iteration": r["iteration"], "latency_ms": r["latency_ms"], "accuracy": r["accuracy"],
                    "chosen": (r.get("chosen") or {}).get("knob"), "se": (r.get("noise") or {}).get("se"),
                    "tied": len((r.get("noise") or {}).get("tied") or []) or None} for r in iterations]
        return {"latency_ms": last["latency_ms"], "spec_path": paths["spec_path"], "iterations": last["iteration"],
                "accuracy": accuracy, "seed_latency_ms": start["seed_ms"], "seed_accuracy": iterations[0]["accuracy"],
                "target_ms": self.config.target_ms, "floor_ms": start["floor_ms"], "device": self.config.device,
                "reached": reached, "unchanged": False, **paths, "log": str(self.log), "out": str(self.out),
                "arch": spec.to_string(), "arch_hash": spec.content_hash(), "spec": spec, "history": history,
                "message": message, "wall_s": time.perf_counter() - started}


def tie_note(noise: Mapping[str, Any], rule: str) -> str:
    """The log's word on whether the measurement could tell the leading proposals apart."""
    count = len(noise["tied"])
    if count < 2:
        return f"clear: the best is alone within {noise['tie_se']:g} SE"
    how = {"noise-aware": "broken by the largest latency cut",
           "latency": "the rule ignores accuracy"}.get(rule, f"{rule} chose among them by noise")
    return (f"tied: {count} proposals within {noise['tie_se']:g} SE of the best top-1 {noise['accuracy']:.4f}, "
            f"{how}")


def run_netadapt(spec: ArchSpec, target_ms: float, device: Any = "pixel1", *,
                 weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
                 data: DataConfig | None = None, budget: str | NetAdaptBudget = "default",
                 out_dir: str | os.PathLike | None = None, resume: bool = False, seed: int = 0,
                 progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Shrink `spec` until its predicted latency on `device` is <= `target_ms`.

    `device` is a name (pixel1, host, a table) or a device object with `name` and `predict_many`.
    `budget` is a name of `nas.budgets` (its NetAdapt part) or a NetAdaptBudget. `weights` (a .pt
    path or state dict fitting the spec adapted to the proxy data) skips the seed's training.
    `overrides` set single NetAdaptConfig fields: steps, final_steps, delta, select, parallel,
    max_iterations, train (a TrainConfig), lr_scale, threads, train_device, address.
    Returns a dict with `spec` (ArchSpec), `spec_path`, `latency_ms`, `accuracy`, `iterations`,
    `reached`, `unchanged`, `weights_path`, `history` and more (see `NetAdapt.result`).
    """
    name = device if isinstance(device, str) else getattr(device, "name", "device")
    config = make_config(target_ms, name, budget, data, seed, **overrides)
    out = Path(out_dir) if out_dir is not None else default_out(spec, config.device, target_ms, seed)
    return NetAdapt(spec, config, out, None if isinstance(device, str) else device, weights, progress).run(resume)
