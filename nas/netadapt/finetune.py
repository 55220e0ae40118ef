"""Training on the proxy task: the seed's training, and each proposal's fine-tune, in-process or as Ray Tune trials."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from nas.accuracy.proxy_config import TrainConfig
from nas.accuracy.proxy_data import load_data
from nas.accuracy.short_training import Trainer, adapt_spec
from nas.core.model import build_model
from nas.core.spec import ArchSpec, spec_from_dict
from nas.netadapt.netadapt_config import NetAdaptConfig
from nas.netadapt.proposals import Proposal
from nas.netadapt.surgery import shrink
from nas.runtime.files import save_state
from nas.runtime.ray_tune import run_tune, trial_error
from nas.runtime.session import select_device, set_threads

log = logging.getLogger(__name__)


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


class ProxyTask:
    """The proxy data and the train / fine-tune / evaluate steps NetAdapt needs, all seeded."""

    def __init__(self, config: NetAdaptConfig, threads: int | None = None):
        self.config = config
        set_threads(threads if threads is not None else config.threads)
        self.device = select_device(config.train_device)
        t = config.train
        self.data = load_data(config.data, t.train_images, t.val_images, self.device)

    @property
    def val_images(self) -> int:
        """Images every accuracy is measured on (a small data set may hold fewer than asked for)."""
        return int(self.data.val_y.shape[0])

    def adapt(self, spec: ArchSpec) -> ArchSpec:
        return adapt_spec(spec, self.data.num_classes, self.data.resolution, self.config.data.stem_stride)

    def model(self, spec: ArchSpec, state: Mapping[str, torch.Tensor]):
        net = build_model(self.adapt(spec))
        net.load_state_dict(state)
        return net

    def run(self, spec: ArchSpec, state: Mapping[str, torch.Tensor] | None, train: TrainConfig | None,
            seed: int) -> dict[str, Any]:
        """Train `spec` from `state` (None: from scratch) with `train` (None: evaluate only)."""
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
        log.log(logging.INFO if progress else logging.DEBUG,
                "  [%d/%d] %s %d->%d: %.3f ms, top-1 %.4f", i + 1, len(proposals), p.knob.label, p.before,
                p.width, p.latency_ms, outcome["accuracy"])
        yield outcome


def _proposal_trial(config: dict[str, Any], payload: dict[str, Any]) -> None:
    """One proposal as a Ray Tune trial: rebuild the parent, inherit, fine-tune, save weights, report."""
    from ray import tune  # deferred: Ray takes 1-5 s to load

    task = ProxyTask(payload["config"], threads=payload["threads"])
    index = config["index"]
    parent = task.model(spec_from_dict(payload["parent"], source="tune payload"), payload["state"])
    spec = spec_from_dict(payload["proposals"][index], source="tune payload")
    outcome = task.finetune(parent, spec, task.config.steps, payload["seed"])
    save_state(outcome.pop("state"), Path(payload["dir"]) / f"p{index:03d}.pt")
    tune.report({**outcome, "reason": outcome["reason"] or ""})


def finetune_with_ray(config: NetAdaptConfig, parent_spec: ArchSpec, parent_state, proposals: Sequence[Proposal],
                      seed: int, work_dir: Path, name: str) -> list[dict[str, Any]]:
    """Every proposal of one iteration as a parallel Ray Tune trial (one CPU each; a GPU each on CUDA)."""
    from ray import tune  # deferred: Ray takes 1-5 s to load

    weights_dir = work_dir / "proposals" / name
    weights_dir.mkdir(parents=True, exist_ok=True)
    payload = {"config": config, "threads": 1, "parent": parent_spec.to_dict(), "state": parent_state,
               "proposals": [p.spec.to_dict() for p in proposals], "seed": seed, "dir": str(weights_dir.resolve())}
    gpus = 1 if select_device(config.train_device).type == "cuda" else 0
    results = run_tune(tune.with_parameters(_proposal_trial, payload=payload), name=name,
                       storage=work_dir / "tune", resources={"cpu": 1, "gpu": gpus},
                       param_space={"index": tune.grid_search(list(range(len(proposals))))},
                       max_failures=config.trial_retries)
    outcomes: list[dict[str, Any] | None] = [None] * len(proposals)
    for r in results:
        i = r.config["index"]
        m = r.metrics or {}
        path = weights_dir / f"p{i:03d}.pt"
        error = trial_error(r)
        ok = error is None and "accuracy" in m and path.exists()
        reason = error or m.get("reason") or None
        outcomes[i] = {"accuracy": float(m.get("accuracy", 0.0)) if ok else 0.0,
                       "failed": (not ok) or bool(m.get("failed")), "reason": reason,
                       "steps": int(m.get("steps", 0)), "seconds": float(m.get("seconds", float("nan"))),
                       "state_path": str(path) if ok else None}
    return outcomes  # type: ignore[return-value]
