"""One training from flags to files: check everything, train (here or on Ray Train), evaluate the
EMA weights, export them, and write the summary.

Every input is checked before the run directory is touched; the directory is then held by a run
lock for the whole training, so two runs cannot write it at once.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from nas.accuracy.proxy_config import DataConfig
from nas.accuracy.proxy_data import load_data
from nas.accuracy.short_training import adapt_spec
from nas.accuracy.training_core import evaluate_accuracy, recalibrate_bn
from nas.core.counts import count_macs, count_params
from nas.core.model import build_model
from nas.core.spec import ArchSpec, save_spec
from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write_bytes, atomic_write_text, load_state, save_state
from nas.runtime.jsonl import jsonable
from nas.runtime.lock import run_lock
from nas.runtime.session import select_device, set_threads
from nas.runtime.stats import standard_error
from nas.train import training_state as ck
from nas.train.training_loop import Training, check_fits, run_epochs, training_spec
from nas.train.recipe import scale_recipe, split_batch
from nas.train.train_on_ray import fit_on_ray

log = logging.getLogger(__name__)

ALL = 10**9  # "every image of the pool" for load_data, which takes prefixes of its pools
BN_IMAGES = 2000
EVAL_BATCH = 500


@dataclass(frozen=True)
class TrainRequest:
    spec: ArchSpec
    data: DataConfig
    out: Path
    epochs: int = 10
    batch_size: int = 128
    train_images: int | None = None  # None: the whole training pool
    val_images: int | None = None    # None: the whole held-out pool
    seed: int = 0
    resume: bool = False
    init: str | None = None
    workers: int = 1
    address: str | None = None
    device: str = "auto"
    threads: int | None = None
    stop_after: int | None = None
    progress: bool = True

    @property
    def on_ray(self) -> bool:
        return self.workers > 1 or self.address is not None


def run_training(req: TrainRequest) -> dict[str, Any]:
    started = time.perf_counter()
    set_threads(req.threads)
    device = select_device(req.device) if not req.on_ray else torch.device("cpu")  # Ray picks the workers'
    per_worker = split_batch(req.batch_size, req.workers)
    out = Path(req.out)
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory", source=str(out), setting="out")
    data = load_data(req.data, req.train_images or ALL, req.val_images or ALL, device)
    n = int(data.train_x.shape[0])
    if n < req.batch_size:
        raise UserError(f"{n} training images are fewer than one batch of {req.batch_size}", setting="batch_size")
    recipe = scale_recipe(req.batch_size, n // req.batch_size, req.epochs)
    spec = training_spec(adapt_spec(req.spec, data.num_classes, data.resolution, req.data.stem_stride), recipe)
    what = (f"spec adapted to {data.name} ({data.num_classes} classes, {data.resolution}x{data.resolution}, "
            f"stem stride {spec.stem.s})")
    init_state = None
    if req.init:
        init_state = load_state(req.init, setting="init", finite=True)
        check_fits(build_model(spec), init_state, req.init, what)
    identity = {"spec": spec.content_hash(), "dataset": data.name, "data": req.data.path,
                "resolution": data.resolution, "stem_stride": spec.stem.s, "split_seed": req.data.split_seed,
                "train_images": n, "val_images": int(data.val_x.shape[0]), "epochs": req.epochs,
                "batch_size": req.batch_size, "seed": req.seed, "workers": req.workers,
                "init": ck.file_digest(req.init) if req.init else None}
    saved = None
    if req.resume:
        saved = ck.load_checkpoint(out)
        ck.check_identity(saved["identity"], identity, str(out / ck.CHECKPOINT))
    elif (out / ck.CHECKPOINT).exists():
        raise UserError(f"holds a training already ({ck.CHECKPOINT}): add --resume to continue it, or give "
                        "another --out", source=str(out), setting="out")
    until = req.epochs if req.stop_after is None else min(req.epochs, req.stop_after)
    hint = "wait for it to finish, or stop it (Ctrl-C) and continue it with --resume"
    with run_lock(out, what="training", resume_hint=hint):
        save_spec(spec, out / ck.SPEC)
        done_before = int(saved["epoch"]) if saved else 0
        trained_at = time.perf_counter()
        if done_before >= until:  # finished before (or stopped here): evaluate and export again
            failure, state = None, saved
        elif req.on_ray:
            config = {"spec": spec.to_dict(), "data": asdict(req.data), "train_images": n,
                      "val_images": int(data.val_x.shape[0]), "recipe": recipe.as_dict(), "seed": req.seed,
                      "out": str(out.resolve()), "resume": saved is not None,
                      "init": str(Path(req.init).resolve()) if req.init else None, "until": until,
                      "identity": identity, "device": req.device, "batch_size": recipe.batch_size}
            failure = fit_on_ray(config, out, req.workers, req.address, req.device, req.threads or 1)
            state = ck.load_checkpoint(out) if (out / ck.CHECKPOINT).exists() else None
        else:
            training = Training(spec, data, recipe, req.seed, init=init_state)
            if saved is not None:
                training.load_state_dict(saved)
            failure, state = _train_here(training, until, out, identity, req.progress)
        train_s = time.perf_counter() - trained_at
        epochs_done = int(state["epoch"]) if state else 0
        base = {"spec": req.spec.name, "arch_hash": spec.content_hash(), "dataset": data.name,
                "resolution": data.resolution, "num_classes": data.num_classes, "stem_stride": spec.stem.s,
                "train_images": n, "val_images": int(data.val_x.shape[0]), "epochs": epochs_done,
                "total_epochs": req.epochs, "steps": int(state["step"]) if state else 0, "workers": req.workers,
                "device": "ray" if req.on_ray else str(device), "per_worker_batch": per_worker,
                "recipe": recipe.as_dict(), "run_dir": str(out), "checkpoint": str(out / ck.CHECKPOINT),
                "history": state["history"] if state else [], "params": count_params(spec), "macs": count_macs(spec),
                # from the epochs' own times: a Ray start is not an epoch's
                "seconds_per_epoch": (sum(h["seconds"] for h in state["history"][done_before:]) /
                                      (epochs_done - done_before)) if epochs_done > done_before else None,
                "train_s": train_s,
                "failed": failure is not None,
                "reason": failure, "finished": failure is None and epochs_done >= req.epochs}
        if failure is not None or epochs_done < req.epochs:
            result = {**base, "accuracy": None, "weights": None, "onnx": None, "tflite": None,
                      "wall_s": time.perf_counter() - started}
        else:
            result = {**base, **_finish(spec, data, state, out), "wall_s": time.perf_counter() - started}
        atomic_write_text(out / ck.SUMMARY, json.dumps(jsonable(result), indent=1, sort_keys=True) + "\n")
    return result


def _train_here(training: Training, until: int, out: Path, identity: dict, progress: bool):
    def on_epoch(t: Training) -> None:
        if t.failure is None:  # a diverged epoch is not saved: the last checkpoint stays the last good one
            ck.save_checkpoint(out, {"identity": identity, **t.state_dict()})

    r = training.recipe
    with tqdm(total=r.total_steps, initial=training.step, desc="train", unit="step", leave=False, mininterval=1,
              disable=not progress) as bar:
        run_epochs(training, until, on_epoch, bar.update)
    return training.failure, training.state_dict()


def _finish(spec: ArchSpec, data, state: dict, out: Path) -> dict[str, Any]:
    """Top-1 of the EMA weights (BN re-estimated) and of the last weights; the EMA's files."""
    from nas.export import tflite  # deferred: loads onnxruntime
    from nas.export.onnx import check_onnx, export_onnx  # deferred: loads onnxruntime

    results = {}
    for key, weights in (("accuracy", "ema"), ("accuracy_last_weights", "model")):
        model = build_model(spec).to(data.device, memory_format=torch.channels_last)
        model.load_state_dict(state[weights])
        # The EMA averages weights over many steps; the statistics averaged alongside them do not belong
        # to the averaged weights exactly, so both are measured with statistics re-estimated for them.
        recalibrate_bn(model, data.batches("train", EVAL_BATCH, limit=BN_IMAGES))
        accuracy, finite = evaluate_accuracy(model, data.batches("val", EVAL_BATCH))
        results[key] = accuracy if finite else 0.0
        if weights == "ema":
            ema = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    n_val = int(data.val_x.shape[0])
    results["standard_error"] = standard_error(results["accuracy"], n_val)
    model = build_model(spec).eval()
    model.load_state_dict(ema)
    shape = (1, 3, spec.resolution, spec.resolution)
    onnx_bytes = export_onnx(model, shape)
    diff = check_onnx(model, onnx_bytes, shape, f"{out / ck.ONNX} (and the weights)", time_it=False)["max_abs_diff"]
    save_state(ema, out / ck.WEIGHTS)
    atomic_write_bytes(out / ck.ONNX, onnx_bytes)
    results.update(weights=str(out / ck.WEIGHTS), spec_path=str(out / ck.SPEC), onnx=str(out / ck.ONNX),
                   onnx_max_abs_diff=diff, tflite=None, tflite_max_abs_diff=None)
    if tflite.tflite_available():
        flat = tflite.to_tflite(model, shape)
        results["tflite_max_abs_diff"] = tflite.max_abs_diff(model, flat, shape)
        atomic_write_bytes(out / ck.TFLITE, flat)
        results["tflite"] = str(out / ck.TFLITE)
    else:
        results["tflite_hint"] = f"no TFLite file: {tflite.INSTALL_HINT}, then run this command again with --resume"
    return results
