"""Accuracy proxies: train one spec, score one spec, or audit every proxy's fidelity.

    python -m nas.proxies train --spec SPEC.yaml [--epochs E | --steps S] [--data PATH] [--json]
    python -m nas.proxies score --spec SPEC.yaml --proxy naswot|synflow|grad_norm|zen|params|macs|all [--json]
    python -m nas.proxies audit --space S --samples N [--budget smoke|default|paper] [--reference-seeds R]
                                [--population random|stratified] [--no-published] [--no-supernet]
                                [--out DIR] [--json]
    python -m nas.proxies imagenet-audit [--networks N] [--trained-networks M] [--proxies P ...] [--out DIR]
                                         [--seed S] [--jobs J] [--json]
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

from nas.runtime.cli import (ArgumentParser, THREADS, add_spec_limit_flags, emit, int_in, non_negative_int,
                             positive_int, resume_command, run_main, seed_int, set_resume_hint)
from nas.runtime.errors import UserError
from nas.runtime.paths import RUNS_DIR
from nas.audit.population import POPULATIONS
from nas.accuracy.proxy_config import DATASETS, OPTIMIZERS, data_from_flags, stem_stride_flag
from nas.runtime.registry import PROXIES
from nas.budgets import BUDGETS, get_budget
from nas.runtime.ray_tune import TRIAL_RETRIES
from nas.audit.imagenet import (ACCEL_NETWORKS, DEFAULT_NETWORKS, DEFAULT_PROXIES, DEFAULT_TRAINED_NETWORKS,
                                ImageNetAuditConfig, REFERENCE_LABEL, run_imagenet_audit)
from nas.accuracy.proxy import make_proxy
from nas.core.spec_file import load_spec_capped
from nas.runtime.log import progress_enabled
from nas.runtime.lock import run_lock
from nas.audit.imagenet_report import markdown_report, write_report as write_imagenet_report


# Config fields a flag sets: a bad value is reported under the flag's name.
def zero_cost_names() -> list[str]:
    """The zero-cost scores registered (a user's own included)."""
    return PROXIES.names(kind="zero-cost")


def _at_least_3(text: str) -> int:
    value = positive_int(text)
    if value < 3:  # a rank correlation of two points is always +-1
        raise argparse.ArgumentTypeError(f"a rank correlation needs at least 3 networks, got {text!r}")
    if value > 100_000:
        raise argparse.ArgumentTypeError(f"must be at most 100000, got {text!r}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="PATH",
                   help="data set directory (IDX files, CIFAR python batches or class folders); "
                        "default: Fashion-MNIST from /usr/share/datasets/fashion-mnist")
    g.add_argument("--dataset", choices=DATASETS, help="format of --data (default: detected)")
    g.add_argument("--resolution", type=positive_int, default=32, help="input size (default 32)")
    g.add_argument("--stem-stride", type=stem_stride_flag, default="auto",
                   help="auto (1 where the net would end at 1x1), keep, 1 or 2")
    r = p.add_argument_group("run")
    r.add_argument("--budget", default="default", choices=sorted(BUDGETS), help="budget (default: default)")
    r.add_argument("--seed", type=seed_int, default=0)
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    r.add_argument("--threads", type=THREADS, help="torch threads (default: the CPUs this process may use)")
    r.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m nas.proxies", description=__doc__.strip().splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    t = sub.add_parser("train", help="train one spec on the proxy task and print its top-1", config_file=True)
    t.add_argument("--spec", required=True, help="architecture spec (YAML)")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, help="epochs (default: the budget's)")
    length.add_argument("--steps", type=positive_int, help="optimizer steps instead of epochs")
    t.add_argument("--train-images", type=positive_int, help="training subset size (default: the budget's)")
    t.add_argument("--val-images", type=positive_int, help="validation subset size (default: the budget's)")
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--lr", type=float, help="peak learning rate (default: scaled with the batch size)")
    t.add_argument("--recipe", choices=("proxy", "final"), default="proxy",
                   help="the budget's search-time proxy recipe (default) or its final, comparison recipe")
    t.add_argument("--seeds", type=positive_int, default=1,
                   help="train at seeds --seed .. --seed+N-1 and report mean and seed-to-seed sd (default 1)")
    _add_common(t)
    add_spec_limit_flags(t)

    s = sub.add_parser("score", help="zero-cost score(s) of one spec", config_file=True)
    s.add_argument("--spec", required=True, help="architecture spec (YAML)")
    s.add_argument("--proxy", required=True, choices=[*zero_cost_names(), "all"])
    _add_common(s)
    add_spec_limit_flags(s)

    a = sub.add_parser("audit", help="rank correlation of every proxy with a longer reference training",
                       config_file=True)
    a.add_argument("--space", required=True, help="search space name (mobilenetv3_large, ...) or YAML path")
    a.add_argument("--samples", type=_at_least_3, required=True, help="architectures to sample (at least 3)")
    a.add_argument("--out", help="output directory (default: ./runs/audit-<space>-<seed>)")
    a.add_argument("--address", help="Ray cluster address for the reference trainings")
    a.add_argument("--ray-cpus", type=int_in(1, 4096), help="run the reference trainings on a local Ray with N CPUs")
    a.add_argument("--trial-retries", type=non_negative_int, default=TRIAL_RETRIES,
                   help=f"reruns of a Ray trial that raised or whose worker died (default {TRIAL_RETRIES})")
    a.add_argument("--reference-seeds", type=int_in(1, 100), default=2,
                   help="train the reference at N seeds: its mean is the reference, the seed-to-seed tau the "
                        "ceiling (default 2)")
    a.add_argument("--population", choices=sorted(POPULATIONS), default="random",
                   help="random draws from the space (default), or stratified: spread evenly in log predicted "
                        "Pixel-1 latency from the space's small end to its large one")
    a.add_argument("--published", action=argparse.BooleanOptionalAction, default=True,
                   help="also rank the reference zoo against its published ImageNet top-1 (default: on)")
    a.add_argument("--supernet", action=argparse.BooleanOptionalAction, default=True,
                   help="also train the space's weight-sharing supernet once (the budget's recipe) and audit its "
                        "inherited accuracies, its training spread over the architectures (default: on)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_common(a)

    i = sub.add_parser("imagenet-audit", help=f"rank every proxy against {REFERENCE_LABEL}",
                       config_file=True)
    i.add_argument("--networks", type=int_in(4, ACCEL_NETWORKS), default=DEFAULT_NETWORKS,
                   help=f"Accel-NASBench records to draw, uniformly with --seed; every cheap proxy scores them all "
                        f"(4..{ACCEL_NETWORKS}, default {DEFAULT_NETWORKS})")
    i.add_argument("--trained-networks", type=int_in(0, ACCEL_NETWORKS), default=DEFAULT_TRAINED_NETWORKS,
                   help=f"the first M of them, which the training proxies (train*, final, supernet) score "
                        f"(0 or 4..--networks, default {DEFAULT_TRAINED_NETWORKS})")
    i.add_argument("--proxies", nargs="+", metavar="P", default=list(DEFAULT_PROXIES),
                   help=f"proxies, space- or comma-separated: {', '.join(zero_cost_names())}, train, train-<E>ep, "
                        f"train-<S>steps, final, supernet (default: {' '.join(DEFAULT_PROXIES)})")
    i.add_argument("--out", help="output directory (default: ./runs/imagenet-audit-<seed>)")
    i.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0,
                   help="the draw's seed and every proxy's (default 0)")
    i.add_argument("--jobs", type=int_in(1, 16), default=1,
                   help="processes: with J > 1 the training proxies run in J - 1 worker processes beside the "
                        "cheap ones (1..16, default 1)")
    i.add_argument("--budget", default="default", choices=sorted(BUDGETS), help="budget (default: default)")
    i.add_argument("--data", metavar="PATH",
                   help="the proxies' data set directory (default: Fashion-MNIST from "
                        "/usr/share/datasets/fashion-mnist)")
    i.add_argument("--dataset", choices=DATASETS, help="format of --data (default: detected)")
    i.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    i.add_argument("--threads", type=int_in(1, 256), help="torch threads per process (default: the CPUs this "
                                                           "process may use)")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")
    i.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    i.set_defaults(resolution=32, stem_stride="auto")
    return p


def cmd_train(args) -> dict:
    from nas.runtime.stats import seed_summary, standard_error  # deferred: loads scipy, which --help does not need

    spec = load_spec_capped(args.spec, args.max_params, args.max_macs)
    accuracy_budget = get_budget(args.budget).accuracy
    recipe = accuracy_budget.final if args.recipe == "final" else accuracy_budget.proxy
    changes = {k: v for k, v in {"train_images": args.train_images, "val_images": args.val_images,
                                "batch_size": args.batch_size, "optimizer": args.optimizer, "lr": args.lr}.items()
               if v is not None}
    if args.epochs is not None:
        changes.update(epochs=args.epochs, steps=None)
    if args.steps is not None:
        changes["steps"] = args.steps
    data, recipe = data_from_flags(args), replace(recipe, **changes)
    seeds = list(range(args.seed, args.seed + args.seeds))
    runs = [make_proxy("train", args.budget, data, s, args.device, args.threads, train=recipe).evaluate(spec)
            for s in seeds]
    result = dict(runs[0])  # the recipe's facts (images, epochs, steps, params) are the same for every seed
    spread = seed_summary([r["accuracy"] for r in runs])
    result.update(name=spec.name, dataset=data.dataset, recipe=args.recipe, seeds=seeds,
                  accuracies=[r["accuracy"] for r in runs], accuracy=spread["mean"], score=spread["mean"],
                  accuracy_sd=spread["sd"], standard_error=standard_error(spread["mean"], result["val_images"]),
                  failed=any(r["failed"] for r in runs), reason=next((r["reason"] for r in runs if r["failed"]), None),
                  seconds=sum(r["seconds"] for r in runs))
    return result


def _human_train(r: dict) -> str:
    if r["failed"]:
        status = f"FAILED ({r['reason']})"
    elif r["accuracy_sd"] is None:
        status = (f"top-1 {r['accuracy']:.4f} ± {r['standard_error']:.4f} (binomial SE of the measurement; one "
                  f"seed: --seeds 3 adds the seed-to-seed sd)")
    else:
        from nas.runtime.stats import mean_sd  # deferred: as above

        status = f"top-1 {mean_sd(r['accuracy'], r['accuracy_sd'])} (seed-to-seed sd, {len(r['seeds'])} seeds)"
    return (f"{r['name']} ({r['arch_hash']}): {status} on {r['val_images']} held-out {r['dataset']} images after "
            f"{r['epochs']} epoch(s), {r['steps']} steps on {r['train_images']} images ({r['recipe']} recipe); "
            f"{r['seconds']:.1f} s")


def cmd_score(args) -> dict:
    spec = load_spec_capped(args.spec, args.max_params, args.max_macs)
    data = data_from_flags(args)
    names = zero_cost_names() if args.proxy == "all" else [args.proxy]
    results = [make_proxy(n, args.budget, data, args.seed, args.device, args.threads).evaluate(spec) for n in names]
    if len(results) == 1:
        return {**results[0], "name": spec.name}
    return {"name": spec.name, "arch_hash": spec.content_hash(), "proxy": "all",
            "scores": {r["proxy"]: r["score"] for r in results}, "seconds": {r["proxy"]: r["seconds"] for r in results},
            "failed": any(r["failed"] for r in results)}


def _human_score(r: dict) -> str:
    if r["proxy"] == "all":
        return "\n".join([f"{r['name']} ({r['arch_hash']}):"] +
                         [f"  {n:10s} {s if s is None else format(s, '.6g'):>14}  {r['seconds'][n]:.3f} s"
                          for n, s in r["scores"].items()])
    return f"{r['name']} ({r['arch_hash']}): {r['proxy']} = {r['score']}  ({r['seconds']:.3f} s)"


def cmd_audit(args) -> dict:
    from nas.audit.fidelity import AuditConfig, run_audit  # deferred: loads scipy
    from nas.audit.fidelity_report import markdown_table, write_report  # deferred: loads scipy

    data = data_from_flags(args)
    space_tag = Path(args.space).stem
    out = Path(args.out) if args.out else RUNS_DIR / f"audit-{space_tag}-{args.seed}"
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory", source=str(out), field="--out")
    config = AuditConfig(space=args.space, samples=args.samples, budget=get_budget(args.budget).accuracy, data=data,
                         seed=args.seed, device=args.device, threads=args.threads, address=args.address,
                         ray_cpus=args.ray_cpus, trial_retries=args.trial_retries,
                         reference_seeds=args.reference_seeds, population=args.population, published=args.published,
                         supernet=args.supernet)
    set_resume_hint(resume_command("python -m nas.proxies", args.argv) + f"  (results kept in {out})")

    specs = config.sample()  # a bad space fails before the lock makes `out`
    with run_lock(out, what="proxy audit", resume_hint="wait for it to finish, or stop it (Ctrl-C) and run "
                                                       "this command again: it resumes from the results kept"):
        audit = run_audit(config, out, progress=not args.no_progress and progress_enabled(), specs=specs)
        files = write_report(audit, out)
    summary = dict(audit["summary"], files=files)
    if not args.json:
        print(markdown_table(summary), end="")
    return summary


def _fmt(v, spec: str = "+.3f") -> str:
    return "–" if v is None else format(v, spec)


def _human_audit(r: dict) -> str:
    lines = [f"recommended proxy: {r['recommended']}; for the search's reward: {r['recommended_for_reward']}"]
    seeds = r.get("reference_seeds") or []
    if len(seeds) > 1:
        lines.append(f"reference ceiling (seed-to-seed Kendall tau, {len(seeds)} seeds): "
                     f"{_fmt(r['reference_ceiling_tau'])} (unrelated rankings: sd {_fmt(r['tau_standard_error'], '.3f')}); "
                     f"of the {len(seeds)}-seed mean, estimated: {_fmt(r.get('reference_mean_ceiling_tau'))}"
                     + (f"; of a {len(seeds) // 2}-seed mean, measured (two halves of the seeds): "
                        f"{_fmt(r['reference_half_ceiling_tau'])}" if r.get("reference_half_ceiling_tau") is not None
                        else ""))
    pub = r.get("published")
    if pub:
        ranked = sorted(pub["table"], key=lambda t: -math.inf if t["kendall_tau"] is None else t["kendall_tau"],
                        reverse=True)
        lines.append(f"against published ImageNet top-1 ({pub['n']} networks; tau ± "
                     f"{pub['tau_standard_error']:.3f}, partial tau at equal latency ± "
                     f"{pub['partial_tau_standard_error']:.3f}; latency alone tau {_fmt(pub['latency_kendall_tau'])}):")
        lines += [f"  {t['proxy']:10s} tau {_fmt(t['kendall_tau'])}  partial tau {_fmt(t['partial_tau'])}"
                  for t in ranked]
    lines.append(f"report: {r['files']['markdown']}, {r['files']['json']}, plots {r['files']['scatter']}, "
                 f"{r['files']['fidelity']}")
    return "\n".join(lines)


def cmd_imagenet_audit(args) -> dict:
    proxies = [name for item in args.proxies for name in item.split(",") if name]
    config = ImageNetAuditConfig(networks=args.networks, trained_networks=args.trained_networks,
                                 proxies=tuple(proxies), seed=args.seed, budget=get_budget(args.budget).accuracy,
                                 data=data_from_flags(args), device=args.device, threads=args.threads,
                                 jobs=args.jobs)
    out = Path(args.out) if args.out else RUNS_DIR / f"imagenet-audit-{args.seed}"
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory", source=str(out), field="--out")
    set_resume_hint(resume_command("python -m nas.proxies", args.argv) + f"  (results kept in {out})")

    with run_lock(out, what="ImageNet proxy audit", resume_hint="wait for it to finish, or stop it (Ctrl-C) and "
                                                                "run this command again: it resumes from the "
                                                                "results kept"):
        audit = run_imagenet_audit(config, out, progress=not args.no_progress and progress_enabled())
        files = write_imagenet_report(audit, out)
    summary = dict(audit["summary"], files=files)
    if not args.json:
        print(markdown_report(summary), end="")
    return summary


def _human_imagenet_audit(r: dict) -> str:
    return (f"recommended at equal latency: {r['recommended']} (against {r['reference']}); "
            f"report: {r['files']['markdown']}, {r['files']['json']}")


COMMANDS = {"train": (cmd_train, _human_train), "score": (cmd_score, _human_score),
            "audit": (cmd_audit, _human_audit), "imagenet-audit": (cmd_imagenet_audit, _human_imagenet_audit)}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    command, human = COMMANDS[args.command]
    result = command(args)  # a setting's key in an error is shown as its flag by run_main
    # A network that diverged is a result (failed: true), not an error: the exit status stays 0.
    emit(result, args.json, human)
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
