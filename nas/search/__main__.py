"""The whole pipeline: search -> best spec -> NetAdapt to the target -> export and check -> report.

    python -m nas.search --target-ms 50|15,25,35,50 [--space auto|mobilenetv3_large|mobilenetv3_small|PATH]
        [--device pixel1|host|NAME] [--proxy NAME [--supernet DIR]] [--budget smoke|default|paper] [--seed N]
        [--out DIR] [--resume] [--address RAY_ADDRESS] [--config FILE] [--baselines LIST|none]
        [--deploy tflite,int8|none] [--json]

Every stage's result lands in the run directory before the next starts (`pipeline.json` says
which are done), so `--resume` picks up at the first unfinished stage; the search stage itself
resumes sample by sample. One process at a time owns a run directory. Several targets make a
family (nas/pipeline/family.py): one run per target, sharing one supernet per space.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

from argparse import ArgumentTypeError
from pathlib import Path

from nas.pipeline.run_config import BASELINES, DEPLOY, RunConfig, new_run_config, saved_run_config
from nas.pipeline.launch import launch
from nas.pipeline.rundir import check_new_run_dir, default_run_dir, latest_run
from nas.pipeline.stages import run_result
from nas.runtime.cli import (ArgumentParser, emit, non_negative_int, positive_float, positive_int, resume_command,
                             run_main, seed_int)
from nas.runtime.registry import ALGORITHMS, BUDGETS, REWARDS
from nas.runtime.ray_tune import TRIAL_RETRIES

PROG = "python -m nas.search"


def parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.strip().splitlines()[0])
    p.add_argument("--target-ms", dest="target_ms", type=targets,
                   help="target latency on the device (ms); several, comma-separated (15,25,35,50): a family")
    p.add_argument("--space", help="auto (default), mobilenetv3_large, mobilenetv3_small, mnasnet, or a YAML path")
    p.add_argument("--device", help="pixel1 (default), host, or a table/model under latency_tables/")
    p.add_argument("--proxy", help="accuracy proxy (default: the budget's; see python -m nas.proxies)")
    p.add_argument("--supernet", metavar="DIR", help="with --proxy supernet: reuse this trained supernet "
                                                     "(python -m nas.supernet train) instead of training one")
    p.add_argument("--budget", choices=list(BUDGETS), help="smoke (<2 min), default (<15 min), paper (cluster)")
    p.add_argument("--algorithm", choices=list(ALGORITHMS),
                   help="guided-evolution (default: evolution guided by a model of the accuracies so far, proposing "
                        "only networks under the target), controller (MnasNet's LSTM with PPO), random, evolution, "
                        "ofa-evolution, or tunas (TuNAS: the supernet and the controller trained together; implies "
                        "--proxy supernet)")
    p.add_argument("--reward", choices=list(REWARDS),
                   help="mnasnet, hard or tunas (default: hard for a searcher that proposes only networks under "
                        "the target, else tunas)")
    p.add_argument("--samples", type=positive_int, help="override the budget's number of samples")
    p.add_argument("--seed", type=seed_int)
    p.add_argument("--data", help="data set folder (default: Fashion-MNIST from dataset-fashion-mnist)")
    p.add_argument("--dataset", help="fashion-mnist (default), cifar10, imagefolder")
    p.add_argument("--config", help="run config YAML (experiments/*.yaml); flags override it")
    p.add_argument("--out", help="run directory (default ./runs/<family>-<target>ms-<device>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (default: the latest run)")
    p.add_argument("--address", help="Ray cluster address (ray start --head); trials run there")
    p.add_argument("--cpus", type=positive_int, help="CPUs a local run may use (Ray trials, torch threads)")
    p.add_argument("--trial-retries", dest="trial_retries", type=non_negative_int,
                   help="reruns of a Ray trial that raised or whose worker died, before it counts as failed "
                        f"(default {TRIAL_RETRIES})")
    p.add_argument("--baselines", type=baseline_list,
                   help=f"what the compare stage trains beside the final network: comma-separated from "
                        f"{', '.join(BASELINES)}, or none (default: the budget's)")
    p.add_argument("--deploy", type=name_list(DEPLOY),
                   help="what the deploy stage makes beside final.onnx: comma-separated from tflite (final.tflite), "
                        "int8 (int8 speed-up and accuracy drop), or none (default: both)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def name_list(choices: tuple[str, ...]):
    """An argparse type: distinct comma-separated names from `choices`, or none (an empty list)."""
    def parse(text: str) -> list[str]:
        names = [] if text.strip() == "none" else [n.strip() for n in text.split(",")]
        bad = [n for n in names if n not in choices]
        if bad or len(set(names)) != len(names):
            raise ArgumentTypeError(f"expected distinct names from {', '.join(choices)} or none, got {text!r}")
        return names
    return parse


baseline_list = name_list(BASELINES)


def targets(text: str) -> float | list[float]:
    """An argparse type: one target in ms, or a family's comma-separated targets (checked in the config)."""
    values = [positive_float(t.strip()) for t in text.split(",")]
    return values[0] if len(values) == 1 else values


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.seed is not None and args.seed < 0:
        p.error(f"argument --seed: must be >= 0, got {args.seed}")
    run_dir, config = resumed_run(args) if args.resume else new_run(args)
    hint = resume_command(PROG, ["--resume", "--out", str(run_dir)])
    result = launch(config, run_dir, args.resume, hint=hint)
    if config.is_family:
        emit(result, args.json, human_family)
    else:
        emit(run_result(result, run_dir).printed(), args.json, human)
    return 0


def resumed_run(args) -> tuple[Path, RunConfig]:
    run_dir = Path(args.out) if args.out else latest_run()
    return run_dir, saved_run_config(run_dir, args)


def new_run(args) -> tuple[Path, RunConfig]:
    config = new_run_config(args)
    run_dir = Path(args.out) if args.out else default_run_dir(config)
    check_new_run_dir(run_dir)
    return run_dir, config


def accuracy(row: dict) -> str:
    """mean ± seed-to-seed sd over the row's seeds; or a model's prediction, labelled as one."""
    from nas.runtime.stats import mean_sd  # deferred: loads scipy

    if row.get("accuracy_label"):
        return f"{row['accuracy_mean']:.4f} ({row['accuracy_label']})"
    return f"{mean_sd(row['accuracy_mean'], row['accuracy_sd'])} ({row['seeds']} seeds) with the final recipe"


def human(r: dict) -> str:
    return "\n".join([
        f"final network for {r['target_ms']:g} ms on {r['device']} ({r['space']}):",
        f"  predicted {r['predicted_ms']:.2f} ms ({100 * (r['predicted_ms'] / r['target_ms'] - 1):+.1f}% from target), "
        f"measured on this host {r['measured_host_ms']:.3f} ms (ONNX Runtime, 1 thread)",
        f"  top-1 {accuracy(r['comparison'][0])}; {r['params']:,} params, "
        f"{r['macs'] / 1e6:.1f}M MACs; {r['samples']} samples, {r['netadapt_iterations']} NetAdapt iterations, "
        f"{r['wall_s']:.0f} s",
        *(f"  vs {row['name']} ({row['kind']}, {row['latency_ms']:.2f} ms): top-1 {accuracy(row)}"
          for row in r["comparison"][1:]),
        f"  {r['verdict']}",
        *deploy_lines(r.get("deploy") or {}),
        f"  spec {r['final_spec']}", f"  onnx {r['onnx']}",
        f"  tflite {r['tflite'] or (r.get('deploy') or {}).get('tflite_note', '-')}",
        f"  report {r['report']}",
        f"  train it: {r['train_command']}",
    ])


def human_family(r: dict) -> str:
    """A line or two per target, then where the family's report is."""
    lines = [f"a family of {len(r['family'])} networks on {r['device']}, {r['wall_s']:.0f} s:"]
    for m in r["family"]:
        lines.append(f"  {m['target_ms']:g} ms ({m['space']}): predicted {m['predicted_ms']:.2f} ms, top-1 "
                     f"{accuracy(m['comparison'][0])}; {m['verdict']}")
        lines.append(f"    spec {m['final_spec']}, onnx {m['onnx']}")
    return "\n".join([*lines, f"  plot {r['plot']}", f"  report {r['report']}"])


def deploy_lines(d: dict) -> list[str]:
    """int8 against fp32: speed-up on this host, accuracy drop on the proxy task."""
    int8 = d.get("int8") or {}
    speed = [f"{name} x{t['speedup']:.2f} ({t['fp32_ms']:.2f} -> {t['int8_ms']:.2f} ms)"
             for name, t in ((n, int8.get(k)) for n, k in (("ONNX Runtime", "onnxruntime"), ("LiteRT", "litert"))) if t]
    lines = [f"  int8 speed-up on this host: {', '.join(speed)}"] if speed else []
    acc = int8.get("accuracy")
    if acc:
        drops = [f"{name} {acc[k + '_top1']:.4f} ({-acc[k + '_drop_points']:+.2f} points)"
                 for name, k in (("ONNX Runtime", "onnx_int8"), ("LiteRT", "tflite_int8")) if acc.get(k + "_top1") is not None]
        lines.append(f"  int8 top-1 on the proxy task: fp32 {acc['fp32_top1']:.4f}, {', '.join(drops)} "
                     f"({acc['val_images']} images, one trained seed)")
    return lines


if __name__ == "__main__":
    run_main(main)
