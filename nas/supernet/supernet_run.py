"""One supernet training from settings to files, and loading a trained one back.

OUT/supernet.pt is replaced whole after every epoch (weights, optimizer, schedule, epoch, the
settings it was made with), so a killed training resumes from its last finished epoch and ends
exactly where an uninterrupted one would; the directory is held by a run lock while it trains.
OUT/supernet.json is the summary: the loss per epoch and the largest and smallest paths' top-1.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from nas.accuracy.proxy_config import DataConfig
from nas.runtime.errors import UserError
from nas.supernet.supernet_config import SupernetConfig
from nas.supernet.supernet_checkpoint import CHECKPOINT, read_checkpoint, save_checkpoint
from nas.runtime.files import atomic_write_text
from nas.runtime.jsonl import jsonable
from nas.runtime.lock import run_lock
from nas.runtime.session import select_device, set_threads
from nas.train.training_state import check_identity
from nas.train.recipe import split_batch
from nas.supernet.supernet_on_ray import supernet_worker_loop
from nas.train.train_on_ray import fit_on_ray

log = logging.getLogger(__name__)

SUMMARY = "supernet.json"


@dataclass(frozen=True)
class SupernetRequest:
    space: str                       # a built-in space's name or a space YAML's path
    data: DataConfig
    out: Path
    config: SupernetConfig = SupernetConfig()
    seed: int = 0
    resume: bool = False
    device: str = "auto"
    threads: int | None = None
    stop_after: int | None = None
    progress: bool = False
    workers: int = 1                 # > 1, or an address: data-parallel on Ray Train
    address: str | None = None
    # TuNAS's joint search: total_steps -> the policy that draws paths and learns (nas/search/joint.py),
    # and what it depends on (target, reward, device, its settings), part of the checkpoint's identity
    learner: Callable[[int], Any] | None = None
    learner_identity: dict[str, Any] | None = None


def space_source(space: str) -> str:
    """A built-in name as given; a file as its absolute path (a checkpoint is read from anywhere)."""
    path = Path(space).expanduser()
    return str(path.resolve()) if path.suffix in (".yaml", ".yml") or path.exists() else space


def identity_of(req: SupernetRequest, space) -> dict[str, Any]:
    joint = {"joint": req.learner_identity} if req.learner_identity is not None else {}
    joint |= {"workers": req.workers} if req.workers > 1 else {}  # each worker's BN sees its share
    return {"space": space.name, "space_hash": _space_hash(space), "data": asdict(req.data), "seed": req.seed,
            **req.config.as_dict(), **joint}


def train_supernet(req: SupernetRequest) -> dict[str, Any]:
    from nas.accuracy.proxy_data import load_data  # deferred: loads torch
    from nas.core.space import load_space  # deferred: loads numpy
    from nas.supernet.path_training import SupernetTraining  # deferred: loads torch

    started = time.perf_counter()
    set_threads(req.threads)
    space = load_space(req.space)
    out = Path(req.out)
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory", source=str(out), setting="out")
    c = req.config
    on_ray = req.workers > 1 or req.address is not None
    if on_ray and req.learner is not None:
        raise UserError("the joint search trains in one process, not on Ray Train workers", setting="workers")
    split_batch(c.batch_size, req.workers)
    data = load_data(req.data, c.train_images, c.val_images, "cpu" if on_ray else select_device(req.device))
    if data.train_x.shape[0] < c.batch_size:
        raise UserError(f"{data.train_x.shape[0]} training images are fewer than one batch of {c.batch_size}",
                        setting="batch_size")
    identity = identity_of(req, space)
    saved = None
    if req.resume:
        saved = read_checkpoint(out / CHECKPOINT, setting="resume")
        check_identity(saved["identity"], identity, str(out / CHECKPOINT))
    elif (out / CHECKPOINT).exists():
        raise UserError(f"holds a supernet already ({CHECKPOINT}): add --resume to continue it, or give another "
                        "--out", source=str(out), setting="out")
    until = c.epochs if req.stop_after is None else min(c.epochs, req.stop_after)
    with run_lock(out, what="supernet training", resume_hint="wait for it, or stop it and continue with --resume"):
        training = SupernetTraining(space, data, c, seed=req.seed, stem_stride=req.data.stem_stride)
        if req.learner is not None:
            training.policy = req.learner(training.total_steps)
        if saved is not None:
            training.load_state_dict(saved)
        done_before = training.epoch
        if on_ray:
            config = {"space": space_source(req.space), "data": asdict(req.data), "config": c.as_dict(),
                      "seed": req.seed, "identity": identity, "out": str(out.resolve()), "until": until,
                      "resume": saved is not None or training.epoch > 0, "batch_size": c.batch_size}
            training.failure = fit_on_ray(config, out, req.workers, req.address, req.device, req.threads or 1,
                                          loop=supernet_worker_loop, name="supernet")
            if (out / CHECKPOINT).exists():
                training.load_state_dict(read_checkpoint(out / CHECKPOINT))
        else:
            from tqdm import tqdm  # deferred: tqdm takes ~0.1 s to load

            with tqdm(total=training.steps_per_epoch * until, initial=training.step, desc="supernet", unit="step",
                      leave=False, mininterval=1, disable=not req.progress) as bar:
                training.run(until, on_epoch=lambda t: save_checkpoint(t, out, identity, space_source(req.space),
                                                                  asdict(req.data)), on_step=bar.update)
        finished = training.failure is None and training.epoch >= c.epochs
        scores = {}
        if training.failure is None and training.epoch > 0:
            for name, spec in (("largest", training.net.largest()), ("smallest", training.net.smallest())):
                scores[f"{name}_accuracy"] = training.evaluate(spec)
        epochs_run = training.history[done_before:]
        result = {"space": space.name, "dataset": data.name, "resolution": data.resolution,
                  "num_classes": data.num_classes, "stem_stride": training.net.stem_spec.s,
                  "epochs": training.epoch, "total_epochs": c.epochs, "steps": training.step,
                  "train_images": int(data.train_x.shape[0]), "val_images": int(data.val_x.shape[0]),
                  "params": sum(p.numel() for p in training.net.parameters()), "config": c.as_dict(),
                  "seed": req.seed, "history": training.history, "checkpoint": str(out / CHECKPOINT),
                  "workers": req.workers, "device": "ray" if on_ray else str(data.device),
                  "seconds_per_epoch": (sum(h["seconds"] for h in epochs_run) / len(epochs_run)) if epochs_run else None,
                  "failed": training.failure is not None, "reason": training.failure, "finished": finished,
                  **scores, "wall_s": time.perf_counter() - started}
        if hasattr(training.policy, "summary"):  # the joint search: how the controller learned
            result["joint"] = training.policy.summary()
        atomic_write_text(out / SUMMARY, json.dumps(jsonable(result), indent=1, sort_keys=True) + "\n")
    return result


def load_supernet(path: str | Path, setting: str = "supernet"):
    """(Supernet with the trained weights in eval mode, the checkpoint's dict, the DataConfig it was trained on)."""
    from nas.core.space import load_space  # deferred: loads numpy
    from nas.supernet.net import Supernet  # deferred: loads torch

    state = read_checkpoint(Path(path), setting)
    space = load_space(state["space_source"])
    if _space_hash(space) != state["identity"]["space_hash"]:
        raise UserError(f"the space {state['space_source']} has changed since the supernet was trained",
                        source=str(path), setting=setting)
    s = state["supernet"]
    net = Supernet(space, s["num_classes"], s["resolution"], s["stem_stride"], s["kernel_transform"])
    net.load_state_dict(state["model"])
    return net.eval(), state, DataConfig(**state["data"])


def _space_hash(space) -> str:
    """What a supernet's shape depends on: the stages, stem, head and SE style."""
    blob = json.dumps({"stages": [asdict(st) for st in space.stages], "stem": asdict(space.stem),
                       "head": asdict(space.head), "se_style": space.se_style}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_calibrated_extractor(path: str | Path, device: str = "cpu", setting: str = "supernet"):
    """A function spec -> stand-alone network with the supernet's weights and BN statistics
    re-estimated for its path on the training images the supernet saw (its recipe's bn_images)."""
    from nas.accuracy.proxy_data import load_data  # deferred: loads torch
    from nas.supernet.path_training import extract_calibrated  # deferred: loads torch

    net, state, data_config = load_supernet(path, setting)
    config = SupernetConfig(**state["config"])
    data = load_data(data_config, config.bn_images, 1, device)
    return lambda spec: extract_calibrated(net.to(device), net.adapt(spec), data, config)
