"""A supernet trained data-parallel on Ray Train workers (`python -m nas.supernet train --workers N`).

Every worker builds the same supernet from the same seed, draws the same paths and data order, and
trains on its share of each global batch; the gradients are averaged across workers before every
step (nas.supernet.path_training.average_gradients), so the weights stay equal everywhere. Worker 0 writes
supernet.pt after every epoch, exactly as a single process does, so either kind of training
resumes from it. As for `nas.train --workers`, on a multi-node cluster the output directory and the
data set must be on storage every node reaches.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.accuracy.proxy_config import DataConfig
from nas.runtime.session import set_threads
from nas.supernet.supernet_checkpoint import CHECKPOINT, read_checkpoint, save_checkpoint
from nas.supernet.supernet_config import SupernetConfig


def supernet_worker_loop(config: dict[str, Any]) -> None:
    import ray.train  # deferred: Ray takes 1-5 s to load
    import ray.train.torch  # deferred: Ray takes 1-5 s to load

    from nas.accuracy.proxy_data import load_data  # deferred: loads torch
    from nas.core.space import load_space  # deferred: loads numpy
    from nas.supernet.path_training import SupernetTraining  # deferred: loads torch

    set_threads(config["threads"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    c = SupernetConfig(**config["config"])
    data_config = DataConfig(**config["data"])
    data = load_data(data_config, c.train_images, c.val_images, ray.train.torch.get_device())
    training = SupernetTraining(load_space(config["space"]), data, c, seed=config["seed"],
                                stem_stride=data_config.stem_stride, rank=rank, world=world)
    out = Path(config["out"])
    if config["resume"]:
        training.load_state_dict(read_checkpoint(out / CHECKPOINT))

    def on_epoch(t: SupernetTraining) -> None:
        if rank == 0:
            save_checkpoint(t, out, config["identity"], config["space"], config["data"])
        ray.train.report({"epoch": t.epoch, "failure": t.failure or ""})  # every rank: it is collective

    training.run(config["until"], on_epoch=on_epoch)
    if training.failure is not None:
        ray.train.report({"epoch": training.epoch, "failure": training.failure})
