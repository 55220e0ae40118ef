"""NetAdapt in milliseconds: shrink a trained network's widths until its predicted latency meets a target.

    python -m nas.netadapt --spec SPEC --target-ms X [--device pixel1|host|NAME] [--weights W.pt]
        [--budget smoke|default|paper] [--steps T] [--final-steps N] [--delta F] [--select ratio|accuracy]
        [--parallel none|ray] [--out DIR] [--resume] [data flags] [--json]

The seed (trained briefly on the proxy task, or loaded with --weights) is shrunk one step per
iteration. Each iteration proposes, for every expansion layer and every bottleneck group
(`nas.netadapt.surgery`), the widest width (a multiple of 8) that cuts the predicted latency by
delta = --delta x the seed's latency (less on the last step: just what the target needs). Each
proposal inherits the largest-L2 filters, is fine-tuned for T steps and scored on the held-out
split; the one with the largest dAccuracy / |dLatency| wins (`--select accuracy`: the original
NetAdapt rule, highest accuracy). Latency is the device's prediction for the spec as given (e.g.
224x224, 1000 classes); accuracy is that of the same widths adapted to the proxy data
(`nas.proxies.adapt_spec`).

Every iteration is a line of OUT/netadapt.jsonl (append-only) plus a checkpoint (spec YAML and
weights), so `--resume` continues from the last completed iteration with the same result.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from nas.runtime.cli import (ArgumentParser, emit, non_negative_int, positive_float, positive_int, resume_command,
                     run_main, set_resume_hint)
from nas.runtime.errors import UserError
from nas.accuracy.config import DataConfig, ProxyConfig, TrainConfig, get_budget, jsonable
from nas.runtime.session import TRIAL_RETRIES, ray_session
from nas.core.spec import ArchSpec, load_spec, save_spec, spec_from_dict
from nas.runtime.files import atomic_write_text
from nas.runtime.paths import RUNS_DIR
from nas.netadapt.surgery import Knob, candidate_widths, floor_widths, knobs_of, shrink, structure

LOG_NAME = "netadapt.jsonl"
SELECT_RULES = ("ratio", "accuracy")
PARALLEL = ("none", "ray")


# ---- budgets and configuration ------------------------------------------------------------------

@dataclass(frozen=True)
class NetAdaptBudget:
    """How much NetAdapt spends: the seed's training, T per proposal, the final fine-tune, delta.

    `train` is the seed's training recipe; its data subset and batch size are the fine-tunes' too.
    Fine-tuning starts from trained weights, so its peak learning rate is `lr_scale` times the
    recipe's.
    """

    name: str
    train: TrainConfig
    steps: int
    final_steps: int
    delta: float = 0.01
    lr_scale: float = 0.1
    parallel: str = "none"


def _proxy_recipe(name: str, **changes: Any) -> TrainConfig:
    return replace(get_budget(name).proxy, **changes)


# Sized on a 2-core CPU where MobileNetV3-Small at 32x32 trains at ~1,300 images/s. `paper` keeps
# the paper's ratio rather than its 10,000 steps: T there was ~10% of a full ImageNet training, and
# 200 steps is ~10% of that budget's proxy training; it runs its proposals as Ray Tune trials.
BUDGETS: dict[str, NetAdaptBudget] = {
    "smoke": NetAdaptBudget("smoke", _proxy_recipe("smoke", epochs=4), steps=4, final_steps=0, delta=0.05),
    "default": NetAdaptBudget("default", _proxy_recipe("default", epochs=5), steps=20, final_steps=300),
    "paper": NetAdaptBudget("paper", _proxy_recipe("paper"), steps=200, final_steps=2000, parallel="ray"),
}


def get_netadapt_budget(name: str) -> NetAdaptBudget:
    try:
        return BUDGETS[name]
    except KeyError:
        raise UserError(f"unknown budget {name!r} (one of {', '.join(BUDGETS)})", field="--budget") from None


@dataclass(frozen=True)
class NetAdaptConfig:
    """Everything a NetAdapt run depends on (plus where it runs: parallel, devices, threads)."""

    target_ms: float
    device: str = "pixel1"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: BUDGETS["default"].train)
    steps: int = 20
    final_steps: int = 300
    delta: float = 0.01
    lr_scale: float = 0.1
    select: str = "ratio"
    seed: int = 0
    parallel: str = "none"
    max_iterations: int | None = None
    train_device: str = "auto"
    threads: int | None = None
    address: str | None = None
    trial_retries: int = TRIAL_RETRIES

    def __post_init__(self):
        if not (isinstance(self.target_ms, (int, float)) and math.isfinite(self.target_ms) and self.target_ms > 0):
            raise UserError(f"must be a finite number > 0, got {self.target_ms!r}", field="--target-ms")
        if not 0 < self.delta < 1:
            raise UserError(f"must be a fraction in (0, 1), got {self.delta!r}", field="--delta")
        if not 0 < self.lr_scale <= 10:
            raise UserError(f"must be in (0, 10], got {self.lr_scale!r}", field="lr_scale")
        for name in ("steps", "final_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"must be an integer >= 0, got {value!r}", field=f"--{name.replace('_', '-')}")
        if self.select not in SELECT_RULES:
            raise UserError(f"must be one of {', '.join(SELECT_RULES)}, got {self.select!r}", field="--select")
        if self.parallel not in PARALLEL:
            raise UserError(f"must be one of {', '.join(PARALLEL)}, got {self.parallel!r}", field="--parallel")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"must be an integer >= 0, got {self.seed!r}", field="--seed")

    def finetune(self, steps: int) -> TrainConfig:
        return replace(self.train, steps=max(1, steps), lr=self.train.learning_rate * self.lr_scale)

    def proxy(self, train: TrainConfig, seed: int, threads: int | None = None) -> ProxyConfig:
        return ProxyConfig(data=self.data, train=train, seed=seed, device=self.train_device,
                           threads=threads if threads is not None else self.threads)

    def identity(self) -> dict[str, Any]:
        """What changes the results; a resumed run must match it."""
        d = asdict(self)
        for key in ("parallel", "max_iterations", "train_device", "threads", "address", "trial_retries"):
            d.pop(key)
        return jsonable(d)


def make_config(target_ms: float, device: str = "pixel1", budget: str | NetAdaptBudget = "default",
                data: DataConfig | None = None, seed: int = 0, **overrides: Any) -> NetAdaptConfig:
    """A config from a budget; `overrides` replace single fields (steps, final_steps, delta, train, ...)."""
    b = get_netadapt_budget(budget) if isinstance(budget, str) else budget
    base = dict(target_ms=target_ms, device=device, data=data or DataConfig(), train=b.train, steps=b.steps,
                final_steps=b.final_steps, delta=b.delta, lr_scale=b.lr_scale, parallel=b.parallel, seed=seed)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return NetAdaptConfig(**base)


def stream_seed(seed: int, *stream: int) -> int:
    """An independent seed per (run seed, iteration): proposals of one iteration see the same batches."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0] % 2**31)


# ---- proposals ----------------------------------------------------------------------------------

@dataclass
class Proposal:
    knob: Knob
    before: int
    width: int
    spec: ArchSpec
    latency_ms: float

    def summary(self) -> dict[str, Any]:
        return {"knob": self.knob.label, "from": self.before, "to": self.width,
                "latency_ms": round(self.latency_ms, 6)}


def predict_ms(device, specs: Sequence[ArchSpec]) -> np.ndarray:
    return np.asarray(device.predict_many(list(specs)), dtype=float).reshape(len(specs), 3)[:, 0]


def _widest_cut(spec: ArchSpec, knob: Knob, floor: int, device, current_ms: float,
                required_ms: float) -> tuple[Proposal | None, Proposal | None]:
    """(widest width cutting `required_ms`, or None; the largest cut seen, for the fallback).

    Widths are predicted in chunks of 1, 2, 4, ... from the widest down, so a measured device (the
    host) measures few new ops, and an analytic one answers in a few batched calls.
    """
    shape = structure(spec)
    before = knob.width(spec)
    options = [(w, s) for w in candidate_widths(before, floor) if structure(s := knob.apply(spec, w)) == shape]
    start, size, largest = 0, 1, None
    while start < len(options):
        chunk = options[start:start + size]
        for (w, s), ms in zip(chunk, predict_ms(device, [s for _, s in chunk])):
            p = Proposal(knob, before, w, s, float(ms))
            if current_ms - ms >= required_ms - 1e-12:
                return p, p
            if largest is None or ms < largest.latency_ms:
                largest = p
        start, size = start + size, size * 2
    return None, largest


def make_proposals(spec: ArchSpec, knobs: Sequence[Knob], floors: Mapping[Knob, int], device,
                   current_ms: float, required_ms: float) -> tuple[list[Proposal], bool]:
    """One proposal per knob that can cut `required_ms`; (proposals, whether the fallback was used).

    When no knob can cut that much alone (near the floor), every knob's largest positive cut is
    proposed instead, so latency keeps falling until the floor.
    """
    found, fallback = [], []
    for knob in knobs:
        p, largest = _widest_cut(spec, knob, floors[knob], device, current_ms, required_ms)
        if p is not None:
            found.append(p)
        elif largest is not None and largest.latency_ms < current_ms:
            fallback.append(largest)
    return (found, False) if found else (fallback, True)


def proposal_score(proposal: Proposal, outcome: dict, current_acc: float, current_ms: float, rule: str) -> float:
    """Higher is better: dAcc / |dLat| ("ratio", MobileNetV3) or the accuracy itself (original NetAdapt)."""
    if outcome["failed"] or not math.isfinite(outcome["accuracy"]):
        return -math.inf
    if rule == "accuracy":
        return outcome["accuracy"]
    return (outcome["accuracy"] - current_acc) / max(current_ms - proposal.latency_ms, 1e-9)


# ---- training on the proxy task -----------------------------------------------------------------

def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


class ProxyTask:
    """The proxy data and the train / fine-tune / evaluate steps NetAdapt needs, all seeded."""

    def __init__(self, config: NetAdaptConfig, threads: int | None = None):
        from nas.accuracy.data import load_data
        from nas.runtime.session import select_device, set_threads

        self.config = config
        set_threads(threads if threads is not None else config.threads)
        self.device = select_device(config.train_device)
        t = config.train
        self.data = load_data(config.data, t.train_images, t.val_images, self.device)

    def adapt(self, spec: ArchSpec) -> ArchSpec:
        from nas.accuracy.train import adapt_spec

        return adapt_spec(spec, self.data.num_classes, self.data.resolution, self.config.data.stem_stride)

    def model(self, spec: ArchSpec, state: Mapping[str, torch.Tensor]):
        from nas.core.model import build_model

        net = build_model(self.adapt(spec))
        net.load_state_dict(state)
        return net

    def run(self, spec: ArchSpec, state: Mapping[str, torch.Tensor] | None, train: TrainConfig | None,
            seed: int) -> dict[str, Any]:
        """Train `spec` from `state` (None: from scratch) with `train` (None: evaluate only)."""
        from nas.accuracy.train import Trainer

        started = time.perf_counter()
        trainer = Trainer(spec, self.data, train or self.config.finetune(1), seed, self.config.data.stem_stride)
        if state is not None:
            trainer.model.load_state_dict(state)
        if train is None:
            accuracy, steps = trainer.evaluate(), 0
        else:
            result = trainer.run()
            accuracy, steps = result.accuracy, result.steps
        return {"accuracy": float(accuracy), "failed": trainer.failure is not None, "reason": trainer.failure,
                "steps": steps, "seconds": time.perf_counter() - started, "state": cpu_state(trainer.model)}

    def finetune(self, parent, proposal_spec: ArchSpec, steps: int, seed: int) -> dict[str, Any]:
        """Inherit the largest-L2 filters of `parent` (a Net), then fine-tune for `steps` (0: evaluate)."""
        child = shrink(parent, self.adapt(proposal_spec))
        return self.run(proposal_spec, cpu_state(child), self.config.finetune(steps) if steps else None, seed)


def finetune_in_process(task: ProxyTask, parent_spec: ArchSpec, parent_state, proposals: Sequence[Proposal],
                        seed: int, progress: bool) -> Iterator[dict[str, Any]]:
    """Fine-tune the proposals one after another; every outcome carries its weights ("state")."""
    parent = task.model(parent_spec, parent_state)
    for i, p in enumerate(proposals):
        outcome = task.finetune(parent, p.spec, task.config.steps, seed)
        if progress:
            _say(f"  [{i + 1}/{len(proposals)}] {p.knob.label} {p.before}->{p.width}: "
                 f"{p.latency_ms:.3f} ms, top-1 {outcome['accuracy']:.4f}")
        yield outcome


def _proposal_trial(config: dict[str, Any], payload: dict[str, Any]) -> None:
    """One proposal as a Ray Tune trial: rebuild the parent, inherit, fine-tune, save weights, report."""
    from ray import tune

    task = ProxyTask(payload["config"], threads=payload["threads"])
    index = config["index"]
    parent = task.model(spec_from_dict(payload["parent"], source="tune payload"), payload["state"])
    spec = spec_from_dict(payload["proposals"][index], source="tune payload")
    outcome = task.finetune(parent, spec, task.config.steps, payload["seed"])
    atomic_torch_save(outcome.pop("state"), Path(payload["dir"]) / f"p{index:03d}.pt")
    tune.report({**outcome, "reason": outcome["reason"] or ""})


def finetune_with_ray(config: NetAdaptConfig, parent_spec: ArchSpec, parent_state, proposals: Sequence[Proposal],
                      seed: int, work_dir: Path, name: str) -> list[dict[str, Any]]:
    """Every proposal of one iteration as a parallel Ray Tune trial (one CPU each; a GPU each on CUDA)."""
    from ray import tune

    from nas.runtime.session import select_device

    weights_dir = work_dir / "proposals" / name
    weights_dir.mkdir(parents=True, exist_ok=True)
    payload = {"config": config, "threads": 1, "parent": parent_spec.to_dict(), "state": parent_state,
               "proposals": [p.spec.to_dict() for p in proposals], "seed": seed, "dir": str(weights_dir.resolve())}
    gpus = 1 if select_device(config.train_device).type == "cuda" else 0
    trainable = tune.with_resources(tune.with_parameters(_proposal_trial, payload=payload), {"cpu": 1, "gpu": gpus})
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(len(proposals))))},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str((work_dir / "tune").resolve()), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=config.trial_retries)))
    outcomes: list[dict[str, Any] | None] = [None] * len(proposals)
    for r in tuner.fit():
        i = r.config["index"]
        m = r.metrics or {}
        path = weights_dir / f"p{i:03d}.pt"
        ok = r.error is None and "accuracy" in m and path.exists()
        reason = (m.get("reason") or None) if r.error is None else f"trial error: {str(r.error).splitlines()[0]}"
        outcomes[i] = {"accuracy": float(m.get("accuracy", 0.0)) if ok else 0.0,
                       "failed": (not ok) or bool(m.get("failed")), "reason": reason,
                       "steps": int(m.get("steps", 0)), "seconds": float(m.get("seconds", float("nan"))),
                       "state_path": str(path) if ok else None}
    return outcomes  # type: ignore[return-value]


# ---- the log and checkpoints --------------------------------------------------------------------

def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def append_record(path: Path, record: dict[str, Any]) -> None:
    """One JSON line, flushed to disk before the next step (a crash leaves at most a torn last line)."""
    with open(path, "a") as f:
        f.write(json.dumps(jsonable(record), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_log(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """(records, whether a torn last line was dropped); damage before the last line is an error."""
    lines = path.read_text().split("\n")
    records, torn = [], False
    complete = lines[:-1]  # after the final "\n" comes "" (or the unterminated, torn tail)
    if lines[-1].strip():
        torn = True
    for n, line in enumerate(complete, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(complete):
                torn = True
                break
            raise UserError(f"line {n} is not JSON: the log is damaged", source=str(path)) from None
    return records, torn


def load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError("file not found", source=str(path)) from None
    except Exception as err:  # torch raises many types for a corrupt file
        raise UserError(f"cannot load weights: {err.__class__.__name__}", source=str(path)) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    return state


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"steps": 5}} -> {"train.steps": 5}: a mismatch names the one setting that differs."""
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# ---- the run ------------------------------------------------------------------------------------

class NetAdapt:
    """One run in `out`: seed -> iterations -> final; every step logged and checkpointed."""

    def __init__(self, spec: ArchSpec, config: NetAdaptConfig, out: Path, device=None,
                 weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None, progress: bool = True):
        from nas.latency.devices import get_device

        self.spec, self.config, self.out, self.progress = spec, config, Path(out), progress
        self.device = device if device is not None else get_device(config.device)
        self.weights = weights
        self.log = self.out / LOG_NAME
        self.knobs = knobs_of(spec)
        self.floors, self.floor_spec = floor_widths(spec, self.knobs)

    def say(self, message: str) -> None:
        if self.progress:
            _say(message)

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

    # -- entry point ----------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict[str, Any]:
        started = time.perf_counter()
        c = self.config
        if self.log.exists() and not resume:
            raise UserError(f"{LOG_NAME} exists: pass --resume to continue that run, or choose another --out",
                            source=str(self.out))
        seed_ms, floor_ms = (float(v) for v in predict_ms(self.device, [self.spec, self.floor_spec]))
        if c.target_ms >= seed_ms:
            return self.unchanged(seed_ms, floor_ms, started)
        if c.target_ms < floor_ms:
            raise UserError(
                f"target {c.target_ms:g} ms is below the floor of {floor_ms:.3f} ms that NetAdapt can reach on "
                f"{c.device} (every bottleneck and expansion at its narrowest admissible width, mostly 8); "
                f"the seed predicts {seed_ms:.3f} ms", field="--target-ms")
        task = ProxyTask(c)  # data and weights problems surface before the log is written
        seed_state = self.seed_weights(task)
        start = self.start_record(seed_ms, floor_ms)
        records = self.open_log(start, resume)
        iterations = [r for r in records if r["type"] == "iteration"]
        final = next((r for r in records if r["type"] == "final"), None)
        if final is not None:
            self.say(f"resumed: the run in {self.out} is complete")
            return self.result(final, iterations, start, started)
        if iterations:
            last = iterations[-1]
            spec, state = self.load_checkpoint(last)
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

    def open_log(self, start: dict[str, Any], resume: bool) -> list[dict[str, Any]]:
        if resume and self.log.exists():
            records, torn = read_log(self.log)
            if not records or records[0].get("type") != "start":
                raise UserError("not a NetAdapt log (no start record)", source=str(self.log))
            theirs, ours = _flatten(records[0]["identity"]), _flatten(jsonable(start["identity"]))
            if theirs != ours:
                diff = ", ".join(f"{k}: log {theirs.get(k)!r} vs now {ours.get(k)!r}"
                                 for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k))
                raise UserError(f"cannot resume a different run ({diff})", source=str(self.log))
            if torn:  # rewrite without the torn tail, so that new lines follow whole ones
                atomic_write_text(self.log, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
            return records
        self.out.mkdir(parents=True, exist_ok=True)
        append_record(self.log, start)
        return [start]

    # -- steps ----------------------------------------------------------------------------------
    def seed_weights(self, task: ProxyTask) -> dict[str, torch.Tensor] | None:
        """The given seed weights, checked against the spec adapted to the proxy data (None: train it)."""
        if self.weights is None:
            return None
        source = None if isinstance(self.weights, Mapping) else str(self.weights)
        state = dict(self.weights) if source is None else load_state(Path(source))
        try:
            task.model(self.spec, state)
        except (RuntimeError, KeyError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"weights do not fit the spec adapted to the proxy data: {first}", source=source,
                            field="--weights") from None
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
        record = self.checkpoint(0, self.spec, outcome["state"], seed_ms, outcome["accuracy"], t0,
                                 source=self.weights_tag(), steps=outcome["steps"])
        self.say(f"seed: {seed_ms:.3f} ms on {c.device}, top-1 {outcome['accuracy']:.4f} "
                 f"(target {c.target_ms:g} ms, delta {c.delta * seed_ms:.3f} ms)")
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
                            field="--target-ms")
        self.say(f"iteration {k}: {len(proposals)} proposals cutting >= {required:.3f} ms"
                 + (" (fallback: largest cuts)" if fallback else ""))
        seed = stream_seed(c.seed, k)
        if c.parallel == "ray":
            source = finetune_with_ray(c, spec, state, proposals, seed, self.out, f"iter{k:03d}")
        else:
            source = finetune_in_process(task, spec, state, proposals, seed, self.progress)
        outcomes: list[dict[str, Any]] = []
        best, best_score = -1, -math.inf
        for i, (p, o) in enumerate(zip(proposals, source)):
            o["score"] = proposal_score(p, o, current_acc, current_ms, c.select)
            if o["score"] > best_score:  # strict: ties go to the first proposal
                if best >= 0:
                    outcomes[best].pop("state", None)  # only the leader's weights stay in memory
                best, best_score = i, o["score"]
            else:
                o.pop("state", None)
            outcomes.append(o)
        if best < 0:
            raise UserError(f"every proposal of iteration {k} diverged in fine-tuning "
                            f"({outcomes[0]['reason']}): lower the learning rate")
        winner, won = proposals[best], outcomes[best]
        new_state = won["state"] if "state" in won else load_state(Path(won["state_path"]))
        if c.parallel == "ray":
            shutil.rmtree(self.out / "proposals" / f"iter{k:03d}", ignore_errors=True)
            shutil.rmtree(self.out / "tune" / f"iter{k:03d}", ignore_errors=True)
        rows = [{**p.summary(), **{key: o.get(key) for key in ("accuracy", "failed", "reason", "score", "seconds")}}
                for p, o in zip(proposals, outcomes)]
        record = self.checkpoint(k, winner.spec, new_state, winner.latency_ms, won["accuracy"], t0,
                                 chosen=rows[best], proposals=rows, required_ms=required, fallback=fallback)
        self.say(f"iteration {k}: {winner.latency_ms:.3f} ms, top-1 {won['accuracy']:.4f} "
                 f"({winner.knob.label} {winner.before}->{winner.width}; {time.perf_counter() - t0:.0f} s)")
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
        atomic_torch_save(state, paths["weights_path"])
        save_spec(task.adapt(final_spec), paths["proxy_spec_path"])
        save_spec(final_spec, paths["spec_path"])
        record = {"type": "final", "iteration": last["iteration"], "spec": final_spec.to_dict(),
                  "arch": final_spec.to_string(), "latency_ms": last["latency_ms"], "accuracy": accuracy,
                  "final_steps": steps, **{k: str(v) for k, v in paths.items()}}
        append_record(self.log, record)
        self.say(f"final: {last['latency_ms']:.3f} ms, top-1 {accuracy:.4f} -> {paths['spec_path']}")
        return record

    def checkpoint(self, k: int, spec: ArchSpec, state, latency_ms: float, accuracy: float, t0: float,
                   **extra: Any) -> dict[str, Any]:
        """Files first, then the log line: a line in the log always has its checkpoint."""
        base = self.out / "checkpoints" / f"iter{k:03d}"
        atomic_torch_save(state, base.with_suffix(".pt"))
        save_spec(replace(spec, name=f"{self.spec.name}-netadapt-{k}"), base.with_suffix(".yaml"))
        record = {"type": "iteration", "iteration": k, "spec": spec.to_dict(), "arch": spec.to_string(),
                  "latency_ms": latency_ms, "accuracy": accuracy,
                  "checkpoint": {"spec": f"checkpoints/iter{k:03d}.yaml", "weights": f"checkpoints/iter{k:03d}.pt"},
                  "seconds": round(time.perf_counter() - t0, 3), **extra}
        append_record(self.log, record)
        return record

    def load_checkpoint(self, record: dict[str, Any]):
        spec = spec_from_dict(record["spec"], source=str(self.log))
        spec = replace(spec, name=self.spec.name)
        state = load_state(self.out / record["checkpoint"]["weights"])
        return spec, state

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
            spec = spec_from_dict(final["spec"], source=str(self.log))
            paths = {k: final[k] for k in ("spec_path", "proxy_spec_path", "weights_path")}
            accuracy, reached = final["accuracy"], True
            message = f"reached {final['latency_ms']:.3f} ms <= {self.config.target_ms:g} ms"
        else:
            spec = spec_from_dict(last["spec"], source=str(self.log))
            paths = {"spec_path": str(self.out / last["checkpoint"]["spec"]), "proxy_spec_path": None,
                     "weights_path": str(self.out / last["checkpoint"]["weights"])}
            accuracy, reached = last["accuracy"], False
            message = f"not finished: {last['latency_ms']:.3f} ms > {self.config.target_ms:g} ms"
        history = [{"iteration": r["iteration"], "latency_ms": r["latency_ms"], "accuracy": r["accuracy"],
                    "chosen": (r.get("chosen") or {}).get("knob")} for r in iterations]
        return {"latency_ms": last["latency_ms"], "spec_path": paths["spec_path"], "iterations": last["iteration"],
                "accuracy": accuracy, "seed_latency_ms": start["seed_ms"], "seed_accuracy": iterations[0]["accuracy"],
                "target_ms": self.config.target_ms, "floor_ms": start["floor_ms"], "device": self.config.device,
                "reached": reached, "unchanged": False, **paths, "log": str(self.log), "out": str(self.out),
                "arch": spec.to_string(), "arch_hash": spec.content_hash(), "spec": spec, "history": history,
                "message": message, "wall_s": time.perf_counter() - started}


def run_netadapt(spec: ArchSpec, target_ms: float, device: Any = "pixel1", *,
                 weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
                 data: DataConfig | None = None, budget: str | NetAdaptBudget = "default",
                 out_dir: str | os.PathLike | None = None, resume: bool = False, seed: int = 0,
                 progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Shrink `spec` until its predicted latency on `device` is <= `target_ms`.

    `device` is a name (pixel1, host, a table) or a device object with `name` and `predict_many`.
    `weights` (a .pt path or state dict fitting the spec adapted to the proxy data) skips the
    seed's training. `overrides` set single NetAdaptConfig fields: steps, final_steps, delta,
    select, parallel, max_iterations, train (a TrainConfig), lr_scale, threads, train_device, address.
    Returns a dict with `spec` (ArchSpec), `spec_path`, `latency_ms`, `accuracy`, `iterations`,
    `reached`, `unchanged`, `weights_path`, `history` and more (see `NetAdapt.result`).
    """
    name = device if isinstance(device, str) else getattr(device, "name", "device")
    config = make_config(target_ms, name, budget, data, seed, **overrides)
    out = Path(out_dir) if out_dir is not None else default_out(spec, config.device, target_ms, seed)
    return NetAdapt(spec, config, out, None if isinstance(device, str) else device, weights, progress).run(resume)


def default_out(spec: ArchSpec, device: str, target_ms: float, seed: int) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{spec.name}-{Path(device).stem}")
    return RUNS_DIR / f"netadapt-{slug}-{target_ms:g}ms-s{seed}"


# ---- command line -------------------------------------------------------------------------------

def _fraction(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1), got {text!r}")
    return value


def _stem_stride(text: str) -> str | int:
    if text in ("auto", "keep", "1", "2"):
        return int(text) if text.isdigit() else text
    raise argparse.ArgumentTypeError(f"must be auto, keep, 1 or 2, got {text!r}")


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m nas.netadapt", description=__doc__.strip().splitlines()[0])
    p.add_argument("--spec", required=True, help="seed architecture (YAML)")
    p.add_argument("--target-ms", type=positive_float, required=True, help="latency target in ms on --device")
    p.add_argument("--device", default="pixel1", help="latency device: pixel1 (default), host or a table name")
    p.add_argument("--weights", help="trained weights (.pt) of the spec adapted to the proxy data "
                                     "(default: train the seed)")
    p.add_argument("--out", help="run directory (default: experiments/runs/netadapt-<spec>-<device>-<target>ms-s<N>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last iteration")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = p.add_argument_group("algorithm and budget")
    a.add_argument("--budget", default="default", choices=sorted(BUDGETS), help="budget (default: default)")
    a.add_argument("--steps", type=non_negative_int, help="fine-tune steps per proposal, T (default: the budget's)")
    a.add_argument("--final-steps", type=non_negative_int, help="long fine-tune of the result (default: the budget's)")
    a.add_argument("--seed-steps", type=positive_int, help="training steps of the seed (default: the budget's)")
    a.add_argument("--delta", type=_fraction, help="latency cut per iteration, a fraction of the seed's latency "
                                                   "(default: the budget's, 0.01)")
    a.add_argument("--select", choices=SELECT_RULES, default="ratio",
                   help="ratio: largest dAcc/|dLat| (MobileNetV3); accuracy: highest accuracy (NetAdapt)")
    a.add_argument("--max-iterations", type=positive_int, help="stop after N iterations in all (--resume goes on)")
    a.add_argument("--seed", type=non_negative_int, default=0)
    r = p.add_argument_group("where it runs")
    r.add_argument("--parallel", choices=PARALLEL, help="none: in-process; ray: each proposal a Ray Tune trial")
    r.add_argument("--address", help="Ray cluster address (with --parallel ray)")
    r.add_argument("--trial-retries", type=non_negative_int, default=TRIAL_RETRIES,
                   help=f"reruns of a proposal's Ray trial that raised or whose worker died (default {TRIAL_RETRIES})")
    r.add_argument("--train-device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train")
    r.add_argument("--threads", type=positive_int, help="torch threads (default: the CPUs this process may use)")
    d = p.add_argument_group("proxy data")
    d.add_argument("--data", metavar="PATH", help="data set directory (default: Fashion-MNIST)")
    d.add_argument("--dataset", choices=("fashion-mnist", "cifar10", "cifar100", "imagefolder"))
    d.add_argument("--resolution", type=positive_int, default=32, help="input size (default 32)")
    d.add_argument("--stem-stride", type=_stem_stride, default="auto")
    d.add_argument("--train-images", type=positive_int, help="training subset (default: the budget's)")
    d.add_argument("--val-images", type=positive_int, help="held-out subset (default: the budget's)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    spec = load_spec(args.spec)
    dataset = args.dataset
    if dataset is None:
        from nas.accuracy.datasets import detect_dataset

        dataset = detect_dataset(args.data) if args.data else "fashion-mnist"
    data = DataConfig(dataset=dataset, path=args.data, resolution=args.resolution, stem_stride=args.stem_stride)
    budget = get_netadapt_budget(args.budget)
    changes = {k: v for k, v in {"train_images": args.train_images, "val_images": args.val_images,
                                 "steps": args.seed_steps}.items() if v is not None}
    out = Path(args.out) if args.out else default_out(spec, args.device, args.target_ms, args.seed)
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory", source=str(out), field="--out")
    if args.resume and not (out / LOG_NAME).exists():
        raise UserError(f"nothing to resume: no {LOG_NAME} here", source=str(out), field="--resume")
    try:
        result = run_netadapt(
            spec, args.target_ms, args.device, weights=args.weights, data=data, budget=budget, out_dir=out,
            resume=args.resume, seed=args.seed,
            train=replace(budget.train, **changes), steps=args.steps, final_steps=args.final_steps,
            delta=args.delta, select=args.select, parallel=args.parallel, max_iterations=args.max_iterations,
            train_device=args.train_device, threads=args.threads, address=args.address,
            trial_retries=args.trial_retries)
    except KeyboardInterrupt:
        argv = sys.argv[1:] if argv is None else argv
        set_resume_hint(resume_command("python -m nas.netadapt", argv, add=["--resume"] + (
            [] if args.out else ["--out", str(out)])) if (out / LOG_NAME).exists() else None)
        raise
    result = {k: v for k, v in result.items() if k != "spec"}
    emit(jsonable(result), args.json, _human)
    return 0


def _human(r: dict[str, Any]) -> str:
    lines = [r["message"]]
    if not r["unchanged"]:
        acc = "n/a" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        lines.append(f"  {r['seed_latency_ms']:.3f} ms -> {r['latency_ms']:.3f} ms on {r['device']} in "
                     f"{r['iterations']} iteration(s); proxy top-1 {r['seed_accuracy']:.4f} -> {acc}")
    lines.append(f"  spec: {r['spec_path']}")
    if r.get("weights_path"):
        lines.append(f"  weights: {r['weights_path']} (fit {r['proxy_spec_path'] or 'the proxy-adapted spec'})")
    lines.append(f"  {r['arch']}")
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
