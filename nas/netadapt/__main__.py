"""NetAdapt in milliseconds: shrink a trained network's widths until its predicted latency meets a target.

    python -m nas.netadapt --spec SPEC --target-ms X [--device pixel1|host|NAME] [--weights W.pt]
        [--budget smoke|default|paper] [--steps T] [--final-steps N] [--delta F]
        [--select ratio|accuracy|noise-aware|latency] [--parallel none|ray] [--out DIR] [--resume] [data flags] [--json]

The seed (trained briefly on the proxy task, or loaded with --weights) is shrunk one step per
iteration. Each iteration proposes, for every expansion layer and every bottleneck group
(`nas.netadapt.surgery`), the widest width (a multiple of 8) that cuts the predicted latency by
delta = --delta x the seed's latency (less on the last step: just what the target needs). Each
proposal inherits the largest-L2 filters, is fine-tuned for T steps and scored on the held-out
split; the one with the largest dAccuracy / |dLatency| wins (`--select accuracy`: the original
NetAdapt rule, highest accuracy; `noise-aware`: the highest accuracy, where proposals within one
binomial standard error of it are tied and the one cutting most latency wins; `latency`: the largest
cut). Every iteration logs that standard error and whether the leading proposals were tied.
Latency is the device's prediction for the spec as given (e.g. 224x224, 1000 classes); accuracy
is that of the same widths adapted to the proxy data (`nas.proxies.adapt_spec`).

Every iteration is a line of OUT/netadapt.jsonl (append-only) plus a checkpoint (spec YAML and
weights), so `--resume` continues from the last completed iteration with the same result.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from nas.accuracy.proxy_config import data_from_flags, stem_stride_flag
from nas.budgets import BUDGETS
from nas.core.spec_file import load_spec_capped
from nas.netadapt.checkpoints import LOG_NAME
from nas.netadapt.netadapt_config import PARALLEL, SELECT_RULES, default_out, netadapt_budget
from nas.runtime.cli import (ArgumentParser, THREADS, add_spec_limit_flags, emit, non_negative_int, positive_float,
                             positive_int, resume_command, run_main, seed_int, set_resume_hint)
from nas.runtime.errors import UserError
from nas.runtime.ray_tune import TRIAL_RETRIES


def _fraction(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1), got {text!r}")
    return value


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m nas.netadapt", description=__doc__.strip().splitlines()[0], config_file=True)
    p.add_argument("--spec", required=True, help="seed architecture: a YAML file or a published one by name")
    p.add_argument("--target-ms", type=positive_float, required=True, help="latency target in ms on --device")
    p.add_argument("--device", default="pixel1", help="latency device: pixel1 (default), host or a table name")
    p.add_argument("--weights", help="trained weights (.pt) of the spec adapted to the proxy data "
                                     "(default: train the seed)")
    p.add_argument("--out", help="run directory (default: ./runs/netadapt-<spec>-<device>-<target>ms-s<N>)")
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
                   help="ratio: largest dAcc/|dLat| (MobileNetV3, the default); accuracy: highest accuracy "
                        "(NetAdapt); noise-aware: highest accuracy, proposals within 1 standard error of it "
                        "tied and broken by the largest latency cut; latency: the largest latency cut")
    a.add_argument("--max-iterations", type=positive_int, help="stop after N iterations in all (--resume goes on)")
    a.add_argument("--seed", type=seed_int, default=0)
    r = p.add_argument_group("where it runs")
    r.add_argument("--parallel", choices=PARALLEL, help="none: in-process; ray: each proposal a Ray Tune trial")
    r.add_argument("--address", help="Ray cluster address (with --parallel ray)")
    r.add_argument("--trial-retries", type=non_negative_int, default=TRIAL_RETRIES,
                   help=f"reruns of a proposal's Ray trial that raised or whose worker died (default {TRIAL_RETRIES})")
    r.add_argument("--train-device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train")
    r.add_argument("--threads", type=THREADS, help="torch threads (default: the CPUs this process may use)")
    d = p.add_argument_group("proxy data")
    d.add_argument("--data", metavar="PATH", help="data set directory (default: Fashion-MNIST)")
    d.add_argument("--dataset", choices=("fashion-mnist", "cifar10", "cifar100", "imagefolder"))
    d.add_argument("--resolution", type=positive_int, default=32, help="input size (default 32)")
    d.add_argument("--stem-stride", type=stem_stride_flag, default="auto")
    d.add_argument("--train-images", type=positive_int, help="training subset (default: the budget's)")
    d.add_argument("--val-images", type=positive_int, help="held-out subset (default: the budget's)")
    add_spec_limit_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    spec = load_spec_capped(args.spec, args.max_params, args.max_macs)
    data = data_from_flags(args)
    budget = netadapt_budget(args.budget)
    changes = {k: v for k, v in {"train_images": args.train_images, "val_images": args.val_images,
                                 "steps": args.seed_steps}.items() if v is not None}
    out = Path(args.out) if args.out else default_out(spec, args.device, args.target_ms, args.seed)
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory", source=str(out), field="--out")
    if args.resume and not (out / LOG_NAME).exists():
        raise UserError(f"nothing to resume: no {LOG_NAME} here", source=str(out), field="--resume")
    if args.address and (args.parallel or budget.parallel) != "ray":  # it would be ignored: refused
        raise UserError(f"takes effect only with --parallel ray (the {budget.name} budget runs proposals in this "
                        f"process)", field="--address")
    from nas.netadapt.netadapt_run import run_netadapt  # deferred: loads torch, after the flags are checked

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
    emit(result, args.json, _human)
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
