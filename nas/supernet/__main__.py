"""Weight-sharing supernets: train one for a space, score networks with it, cut one out with its weights.

    python -m nas.supernet train [--space S] [--out DIR] [--epochs N] [--train-images N] [--sampler sandwich|uniform]
        [--paths K] [--kernel-transform] [--data PATH] [--dataset NAME] [--resume] [--stop-after K]
        [--workers N] [--address RAY_ADDRESS] [--json]
    python -m nas.supernet score --supernet DIR SPEC [SPEC ...] [--json]
    python -m nas.supernet extract --supernet DIR SPEC --out WEIGHTS.pt [--json]

`train` writes DIR/supernet.pt after every epoch (a killed training continues with --resume and ends
as an uninterrupted one) and DIR/supernet.json. `score` prints each spec's inherited top-1 (BN
re-estimated for its path). `extract` writes the spec's network with the inherited weights, which
`python -m nas.train SPEC --init WEIGHTS.pt` starts from.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from nas.accuracy.proxy_config import DATASETS, data_from_flags, stem_stride_flag
from nas.core.spec import save_spec
from nas.core.spec_file import load_spec
from nas.runtime.cli import (ArgumentParser, THREADS, WORKERS, emit, positive_int, resume_command, resumable,
                             run_main, seed_int)
from nas.runtime.files import save_state
from nas.runtime.log import progress_enabled
from nas.runtime.paths import RUNS_DIR
from nas.runtime.session import set_threads
from nas.supernet.supernet_config import SAMPLERS, SupernetConfig
from nas.supernet.supernet_proxy import SupernetProxy
from nas.supernet.supernet_run import CHECKPOINT, SupernetRequest, load_calibrated_extractor, train_supernet

DEFAULTS = SupernetConfig()


def cmd_train(args) -> dict[str, Any]:
    data = data_from_flags(args)
    if data.path:
        data = replace(data, path=str(Path(data.path).expanduser().resolve()))
    changes = {f.name: getattr(args, f.name) for f in fields(SupernetConfig)
               if getattr(args, f.name, None) is not None}
    config = SupernetConfig(**changes)  # a bad value names its setting: run_main shows it as the flag
    out = Path(args.out) if args.out else RUNS_DIR / f"supernet-{Path(args.space).stem}-s{args.seed}"
    request = SupernetRequest(space=args.space, data=data, out=out, config=config, seed=args.seed,
                              resume=args.resume, device=args.device, threads=args.threads,
                              stop_after=args.stop_after, progress=progress_enabled(), workers=args.workers,
                              address=args.address)
    again = resume_command("python -m nas.supernet", args.argv,
                           add=["--resume"] + ([] if args.out else ["--out", str(out)]))
    return resumable(lambda: train_supernet(request), again, out / CHECKPOINT)


def cmd_score(args) -> dict[str, Any]:
    specs = [load_spec(s) for s in args.spec]
    proxy = SupernetProxy(args.supernet, device=args.device, threads=args.threads)
    rows = [{"spec": s.name, **proxy.evaluate(s)} for s in specs]
    return {"supernet": args.supernet, "rows": rows}


def cmd_extract(args) -> dict[str, Any]:
    set_threads(args.threads)
    model = load_calibrated_extractor(args.supernet)(load_spec(args.spec))
    spec = model.spec
    save_state({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)
    spec_path = Path(args.out).with_suffix(".yaml")
    save_spec(spec, spec_path)
    return {"spec": spec.name, "weights": str(args.out), "spec_path": str(spec_path),
            "params": sum(p.numel() for p in model.parameters()),
            "train_command": f"python -m nas.train {spec_path} --init {args.out}"}


def _human(r: dict[str, Any]) -> str:
    if "rows" in r:
        return "\n".join(f"{row['spec']}: top-1 {row['accuracy']:.4f} on {row['val_images']} held-out images "
                         f"({row['seconds']:.2f} s)" for row in r["rows"])
    if "weights" in r:
        return f"{r['spec']}: {r['params']:,} params -> {r['weights']} (spec {r['spec_path']}); train: {r['train_command']}"
    if r["failed"]:
        return f"supernet training FAILED ({r['reason']}); last good checkpoint {r['checkpoint']}"
    if not r["finished"]:
        return f"supernet: stopped after epoch {r['epochs']} of {r['total_epochs']}; continue with: {r['resume_command']}"
    per = f", {r['seconds_per_epoch']:.0f} s per epoch" if r["seconds_per_epoch"] else ""
    return (f"supernet of {r['space']} on {r['dataset']} ({r['train_images']:,} images, {r['params']:,} shared "
            f"params): {r['epochs']} epochs{per}; largest path top-1 {r.get('largest_accuracy', 0):.4f}, smallest "
            f"{r.get('smallest_accuracy', 0):.4f} -> {r['checkpoint']}")


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m nas.supernet", description=__doc__.strip().splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    t = sub.add_parser("train", help="train a supernet for a space by path sampling", config_file=True)
    t.add_argument("--space", default="mobilenetv3_large", help="search space name or YAML (default mobilenetv3_large)")
    t.add_argument("--out", help="directory (default ./runs/supernet-<space>-s<seed>)")
    t.add_argument("--resume", action="store_true", help="continue the training in --out from its last epoch")
    t.add_argument("--seed", type=seed_int, default=0)
    t.add_argument("--stop-after", type=positive_int, metavar="K", help="stop after epoch K (--resume goes on)")
    t.add_argument("--epochs", type=positive_int, help=f"default {DEFAULTS.epochs}")
    t.add_argument("--train-images", type=positive_int, help=f"default {DEFAULTS.train_images}")
    t.add_argument("--val-images", type=positive_int, help=f"held-out images a score uses (default {DEFAULTS.val_images})")
    t.add_argument("--batch-size", type=positive_int, help=f"default {DEFAULTS.batch_size}")
    t.add_argument("--learning-rate", type=float, help=f"peak SGD rate (default {DEFAULTS.learning_rate})")
    t.add_argument("--sampler", choices=SAMPLERS, help=f"path sampling (default {DEFAULTS.sampler})")
    t.add_argument("--paths", type=positive_int, help=f"paths per step (default {DEFAULTS.paths})")
    t.add_argument("--kernel-transform", action="store_const", const=True,
                   help="once-for-all's learned kernel transform for the smaller kernels")
    t.add_argument("--bn-images", type=positive_int, help=f"images that re-estimate BN per path (default {DEFAULTS.bn_images})")
    t.add_argument("--data", metavar="PATH", help="data set directory (default: Fashion-MNIST)")
    t.add_argument("--dataset", choices=DATASETS, help="format of --data (default: detected)")
    t.add_argument("--resolution", type=positive_int, default=32, help="input size (default 32)")
    t.add_argument("--stem-stride", type=stem_stride_flag, default="auto", help="auto, keep, 1 or 2")
    t.add_argument("--workers", type=WORKERS, default=1,
                   help="data-parallel Ray Train workers (default 1: this process); --threads is per worker")
    t.add_argument("--address", help="join this Ray cluster (ray start --head) and train there")
    t.set_defaults(run=cmd_train)

    s = sub.add_parser("score", help="inherited top-1 of specs (BN re-estimated per path)", config_file=True)
    s.add_argument("spec", nargs="+", help="spec YAML files or published names")
    s.set_defaults(run=cmd_score)

    e = sub.add_parser("extract", help="a spec's network with the supernet's weights, for nas.train --init",
                       config_file=True)
    e.add_argument("spec")
    e.add_argument("--out", required=True, metavar="WEIGHTS.pt")
    e.set_defaults(run=cmd_extract)

    for name in ("score", "extract"):
        sub.choices[name].add_argument("--supernet", required=True, help="a trained supernet's directory or supernet.pt")
    for sp in sub.choices.values():
        sp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
        sp.add_argument("--threads", type=THREADS, help="torch threads (default: this process's CPUs)")
        sp.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    emit(args.run(args), args.json, _human)
    return 0


if __name__ == "__main__":
    run_main(main)
