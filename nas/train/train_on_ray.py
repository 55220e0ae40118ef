"""Data-parallel training on Ray Train: N workers (torch DistributedDataParallel), one global batch.

Each worker runs the same loop as a single process (nas.train.training_loop) on its share of every batch,
so the recipe (scaled to the global batch) is unchanged. Worker 0 writes the per-epoch checkpoint
into the run directory: on a multi-node cluster that directory, and the data set's path, must be
reachable from every node (shared storage). The data set travels as its DataConfig, never as
arrays; each worker loads it once. Ray's temporary directory stays short (nas.runtime.session).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from nas.accuracy.proxy_config import DataConfig
from nas.core.spec import spec_from_dict
from nas.runtime.errors import UserError
from nas.runtime.files import load_state
from nas.runtime.session import ray_session, set_threads
from nas.train.recipe import Recipe
from nas.train.training_state import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


def worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: train from the config's state to epoch `until`, checkpointing on rank 0."""
    import ray.train  # deferred: Ray takes 1-5 s to load
    import ray.train.torch  # deferred: Ray takes 1-5 s to load

    from nas.accuracy.proxy_data import load_data  # deferred: loads torch
    from nas.train.training_loop import Training, run_epochs  # deferred: loads torch

    set_threads(config["threads"])  # Ray sets OMP_NUM_THREADS per worker; torch is told explicitly
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    data = load_data(DataConfig(**config["data"]), config["train_images"], config["val_images"], device)
    out = Path(config["out"])
    training = Training(spec_from_dict(config["spec"], source="ray train config"), data, Recipe(**config["recipe"]),
                        config["seed"], rank=rank, world=world,
                        init=load_state(config["init"]) if config["init"] else None,
                        wrap=ray.train.torch.prepare_model)
    if config["resume"]:
        training.load_state_dict(load_checkpoint(out))

    def on_epoch(t: Training) -> None:
        if rank == 0 and t.failure is None:
            save_checkpoint(out, {"identity": config["identity"], **t.state_dict()})
        ray.train.report({"epoch": t.epoch, "failure": t.failure or ""})  # every rank: it is collective

    run_epochs(training, config["until"], on_epoch)


def fit_on_ray(config: dict[str, Any], out: Path, workers: int, address: str | None, device: str,
               threads: int, loop=worker_loop, name: str = "train") -> str | None:
    """Run `loop` (a network's `worker_loop`, or the supernet's) on `workers` Ray Train workers (a
    private local Ray unless `address`); returns the divergence a worker reported, if any."""
    with ray_session(address, None if address else workers * threads):
        import ray  # deferred: Ray takes 1-5 s to load
        from ray.train import FailureConfig, RunConfig, ScalingConfig  # deferred: Ray takes 1-5 s to load
        from ray.train.torch import TorchTrainer  # deferred: Ray takes 1-5 s to load

        gpus = ray.cluster_resources().get("GPU", 0)
        use_gpu = device == "cuda" or (device == "auto" and gpus >= workers)
        if device == "cuda" and gpus < workers:
            raise UserError(f"{workers} workers need {workers} GPUs; the Ray cluster has {gpus:g}", setting="device")
        cpus = ray.cluster_resources().get("CPU", 0)
        if address and cpus < workers * threads:
            raise UserError(f"{workers} workers of {threads} CPU(s) need {workers * threads} CPUs; the Ray cluster "
                            f"has {cpus:g}", setting="workers")
        log.info("training on %d Ray Train workers (%s, %d images each per step)", workers,
                 "GPU" if use_gpu else "CPU", config["batch_size"] // workers)
        trainer = TorchTrainer(
            loop, train_loop_config={**config, "threads": threads},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker={
                "CPU": threads, **({"GPU": 1} if use_gpu else {})}),
            run_config=RunConfig(name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                                 storage_path=str((out / "ray").resolve()),
                                 failure_config=FailureConfig(max_failures=0)))
        result = trainer.fit()
    metrics = getattr(result, "metrics", None) or {}
    return metrics.get("failure") or None
