"""Train a spec with MobileNetV3's recipe (scaled to the data set and batch); evaluate its EMA weights.

    python -m nas.train SPEC [--data PATH] [--dataset NAME] [--epochs N] [--batch-size B]
        [--train-images N] [--val-images N] [--address RAY_ADDRESS] [--workers N] [--device auto|cpu|cuda]
        [--out DIR] [--resume] [--init WEIGHTS.pt] [--seed S] [--stop-after K] [--json]

Writes into --out (default ./runs/train-<spec>-s<seed>): checkpoint.pt after every epoch, then
spec.yaml (the spec as trained: the data's classes and resolution), weights.pt (the EMA's
state_dict, for `python -m nas.export OUT/spec.yaml --weights OUT/weights.pt`), model.onnx
(checked against torch), model.tflite (with the optional extra 'tflite') and train.json.
A killed run continues with --resume; the result equals an uninterrupted run's.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from nas.accuracy.proxy_config import DATASETS, data_from_flags, stem_stride_flag
from nas.core.spec_file import load_spec_capped
from nas.runtime.cli import (ArgumentParser, THREADS, WORKERS, add_spec_limit_flags, emit,
                             positive_int, resume_command, resumable, run_main, seed_int)
from nas.runtime.errors import UserError
from nas.runtime.log import progress_enabled
from nas.runtime.paths import RUNS_DIR, path_slug
from nas.train.training_state import CHECKPOINT

DEFAULT_EPOCHS = 10
DEFAULT_BATCH = 128
def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m nas.train", description=__doc__.strip().splitlines()[0], config_file=True)
    p.add_argument("spec", help="architecture spec: a YAML file or a published one by name")
    p.add_argument("--out", help="run directory (default: ./runs/train-<spec>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the training in --out from its last epoch")
    p.add_argument("--init", metavar="WEIGHTS.pt", help="start from these weights (e.g. a NetAdapt checkpoint's): "
                                                        "they must fit the spec adapted to the data")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    t = p.add_argument_group("length and batch")
    t.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS, help=f"epochs (default {DEFAULT_EPOCHS})")
    t.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH,
                   help=f"global batch, split over the workers (default {DEFAULT_BATCH})")
    t.add_argument("--stop-after", type=positive_int, metavar="K",
                   help="stop after epoch K of --epochs (the schedule stays that of --epochs); --resume goes on")
    d = p.add_argument_group("data")
    d.add_argument("--data", metavar="PATH", help="data set directory (default: Fashion-MNIST)")
    d.add_argument("--dataset", choices=DATASETS, help="format of --data (default: detected)")
    d.add_argument("--resolution", type=positive_int, default=32, help="input size (default 32, the proxy task's)")
    d.add_argument("--stem-stride", type=stem_stride_flag, default="auto",
                   help="auto (1 where the net would end at 1x1), keep, 1 or 2")
    d.add_argument("--train-images", type=positive_int, help="training images (default: the whole training pool)")
    d.add_argument("--val-images", type=positive_int, help="held-out images (default: the whole held-out pool)")
    r = p.add_argument_group("where it runs")
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train (default auto)")
    r.add_argument("--workers", type=WORKERS, default=1,
                   help="data-parallel Ray Train workers (default 1: this process, no Ray)")
    r.add_argument("--address", help="Ray cluster address: train there with --workers workers")
    r.add_argument("--threads", type=THREADS,
                   help="torch threads (per worker on Ray; default: this process's CPUs, 1 per Ray worker)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_spec_limit_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    spec = load_spec_capped(args.spec, args.max_params, args.max_macs)
    data = data_from_flags(args)  # a bad value names its setting: run_main shows it as the flag
    if data.path:  # absolute: Ray workers run in folders of their own
        data = replace(data, path=str(Path(data.path).expanduser().resolve()))
    if args.init and not Path(args.init).is_file():
        raise UserError("file not found" if not Path(args.init).exists() else "not a weights file",
                        source=args.init, field="--init")
    out = Path(args.out) if args.out else RUNS_DIR / f"train-{path_slug(spec.name)}-s{args.seed}"
    from nas.train.training_run import TrainRequest, run_training  # deferred: loads torch, after the flags are checked

    request = TrainRequest(spec=spec, data=data, out=out, epochs=args.epochs, batch_size=args.batch_size,
                           train_images=args.train_images, val_images=args.val_images, seed=args.seed,
                           resume=args.resume, init=args.init, workers=args.workers, address=args.address,
                           device=args.device, threads=args.threads, stop_after=args.stop_after,
                           progress=progress_enabled() and not args.no_progress)
    again = _without_stop_after(resume_command("python -m nas.train", argv,
                                               add=["--resume"] + ([] if args.out else ["--out", str(out)])))
    result = resumable(lambda: run_training(request), again, out / CHECKPOINT)
    emit(result, args.json, _human)
    return 0


def _without_stop_after(command: str) -> str:
    words = shlex.split(command)
    if "--stop-after" in words:
        i = words.index("--stop-after")
        del words[i:i + 2]
    return shlex.join(words)


def _human(r: dict[str, Any]) -> str:
    head = (f"{r['spec']} on {r['dataset']} ({r['num_classes']} classes, {r['resolution']}x{r['resolution']}, "
            f"stem stride {r['stem_stride']}; {r['params']:,} params, {r['macs'] / 1e6:.1f}M MACs)")
    per_epoch = "" if r["seconds_per_epoch"] is None else f", {r['seconds_per_epoch']:.1f} s per epoch"
    if r["failed"]:
        return f"{head}: training FAILED ({r['reason']}); last good checkpoint {r['checkpoint']}"
    if not r["finished"]:
        return (f"{head}: stopped after epoch {r['epochs']} of {r['total_epochs']}{per_epoch}; "
                f"continue with: {r['resume_command']}")
    rc = r["recipe"]
    lines = [f"{head}:",
             f"  top-1 {r['accuracy']:.4f} ± {r['standard_error']:.4f} (EMA weights; binomial SE) on "
             f"{r['val_images']:,} held-out images; last weights {r['accuracy_last_weights']:.4f}",
             f"  {r['epochs']} epochs, {r['steps']:,} steps of {rc['batch_size']} on {r['train_images']:,} images "
             f"({r['workers']} worker(s), {r['device']}){per_epoch}; {r['wall_s']:.0f} s in all",
             f"  recipe: RMSProp lr {rc['lr']:.4g} (momentum {rc['momentum']}), warm-up {rc['warmup_steps']} steps, "
             f"exponential decay to {rc['final_lr_fraction']:.2f}x, EMA {rc['ema_decay']:.5f}, "
             f"weight decay {rc['weight_decay']:g}, dropout {rc['dropout']}",
             f"  spec {r['spec_path']}, weights {r['weights']}, ONNX {r['onnx']}",
             f"  TFLite {r['tflite']}" if r["tflite"] else f"  {r['tflite_hint']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
