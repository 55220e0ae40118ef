"""Training proxies as Ray Tune trials: one trial per spec, a report (and checkpoint) per epoch.

`proxy_trainable` is a function trainable; its per-epoch `accuracy` lets ASHA stop poor trials
early, and its checkpoint (model, optimizer, schedule, epoch) lets Tune resume or pause a trial
exactly, because data order and augmentation depend only on (seed, epoch). `evaluate_specs` runs
many specs on a local Ray it starts (and stops) or on an existing cluster.

Ray 2.x notes: the data set travels as its `DataConfig` (a path), never as arrays, and each
worker process caches what it loaded, so `reuse_actors=True` loads it once per worker. Ray's
temporary directory holds Unix sockets whose paths must stay under 107 bytes: it is short.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from nas.accuracy.proxy_config import ProxyConfig
from nas.runtime.paths import RUNS_DIR
from nas.runtime.session import ray_session, select_device, set_threads
from nas.runtime.ray_tune import TRIAL_RETRIES, run_tune, trial_error
from nas.core.spec import ArchSpec, spec_from_dict

CHECKPOINT_FILE = "trainer.pt"


def proxy_trainable(config: dict[str, Any], specs: Sequence[dict[str, Any]] | None = None) -> None:
    """Train one spec: config["proxy"] is a ProxyConfig dict; the spec is config["spec"] or specs[config["index"]]."""
    import torch  # deferred: torch takes ~2 s to load
    from ray import tune  # deferred: Ray takes 1-5 s to load

    from nas.accuracy.proxy_data import load_data  # deferred: loads torch
    from nas.accuracy.short_training import Trainer  # deferred: loads torch

    proxy = ProxyConfig.from_dict(config["proxy"])
    set_threads(proxy.threads)  # Ray sets OMP_NUM_THREADS per task; torch is told explicitly
    device = select_device(proxy.device)
    spec_dict = config["spec"] if "spec" in config else specs[config["index"]]
    spec = spec_from_dict(spec_dict, source="tune config")
    data = load_data(proxy.data, proxy.train.train_images, proxy.train.val_images, device)
    trainer = Trainer(spec, data, proxy.train, proxy.seed, proxy.data.stem_stride)

    # The checkpoint is the trainer's whole state (model, optimizer, schedule, epoch), not a weights
    # file: it keeps its own torch.load. Tune copies the folder it is saved in, so no atomic write.
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trainer.load_state_dict(torch.load(Path(directory) / CHECKPOINT_FILE, map_location=device,
                                               weights_only=True))
    started = time.perf_counter()

    def report(trainer: Trainer, record: dict[str, Any]) -> None:
        metrics = {**record, "loss": record["loss"] if record["loss"] is not None else float("nan"),
                   "seconds": time.perf_counter() - started, "total_epochs": trainer.total_epochs,
                   "reason": trainer.failure or ""}
        with tempfile.TemporaryDirectory() as directory:
            torch.save(trainer.state_dict(), Path(directory) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))

    trainer.run(on_epoch=report)


def evaluate_specs(specs: Sequence[ArchSpec], proxy_config: ProxyConfig, address: str | None = None,
                   cpus: int | None = None, *, cpus_per_trial: int = 1, gpus_per_trial: float = 0,
                   run_dir: str | os.PathLike = RUNS_DIR / "tune", name: str | None = None,
                   asha: bool = False, grace_period: int = 1, max_concurrent: int | None = None,
                   max_failures: int = TRIAL_RETRIES) -> list[dict[str, Any]]:
    """Train every spec as a Tune trial; one result dict per spec, in order.

    A local Ray with `cpus` CPUs (default: this process's) is started and stopped here unless
    `address` names a running cluster (or Ray is already initialised). Results and checkpoints
    stay under `run_dir` (on a multi-node cluster, make it storage every node can reach). With
    `asha`, poor trials stop after `grace_period` epochs; their accuracy is then that of the
    shorter training (`stopped_early` is set). A trial that raises or whose worker dies is retried
    `max_failures` times, then its result is failed with the error as the reason.
    """
    from ray import tune  # deferred: Ray takes 1-5 s to load
    from ray.tune.schedulers import ASHAScheduler  # deferred: Ray takes 1-5 s to load

    if not specs:
        return []
    if proxy_config.threads is None:
        proxy_config = replace(proxy_config, threads=cpus_per_trial)
    with ray_session(address, cpus):
        total_epochs = _total_epochs(proxy_config)
        scheduler = ASHAScheduler(max_t=total_epochs, grace_period=min(grace_period, total_epochs)) if asha else None
        grid = run_tune(tune.with_parameters(proxy_trainable, specs=[s.to_dict() for s in specs]),
                        name=name or f"proxies-{time.strftime('%Y%m%d-%H%M%S')}", storage=run_dir,
                        resources={"cpu": cpus_per_trial, "gpu": gpus_per_trial},
                        param_space={"proxy": proxy_config.to_dict(),
                                     "index": tune.grid_search(list(range(len(specs))))},
                        scheduler=scheduler, metric="accuracy", mode="max", max_concurrent=max_concurrent,
                        max_failures=max_failures)
        results: list[dict[str, Any] | None] = [None] * len(specs)
        for r in grid:
            index = r.config["index"]
            results[index] = _result(specs[index], r, total_epochs)
        return results  # type: ignore[return-value]


def _total_epochs(config: ProxyConfig) -> int:
    t = config.train
    steps_per_epoch = max(1, t.train_images // min(t.batch_size, t.train_images))
    return math.ceil(t.steps / steps_per_epoch) if t.steps else t.epochs


def _result(spec: ArchSpec, r, total_epochs: int) -> dict[str, Any]:
    m = r.metrics or {}
    failed = bool(m.get("failed", True)) or r.error is not None
    reason = trial_error(r) or m.get("reason") or None
    accuracy = 0.0 if failed else float(m.get("accuracy", 0.0))
    epochs = int(m.get("epoch", 0))
    total_epochs = int(m.get("total_epochs", total_epochs))
    return {"proxy": "tune", "arch_hash": spec.content_hash(), "score": accuracy, "accuracy": accuracy,
            "failed": failed, "reason": reason, "seconds": float(m.get("seconds", float("nan"))),
            "epochs": epochs, "stopped_early": not failed and epochs < total_epochs,
            "trial_dir": r.path}
