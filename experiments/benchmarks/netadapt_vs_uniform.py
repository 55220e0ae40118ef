"""NetAdapt vs a uniform width multiplier, and NetAdapt's selection rules, at equal latency over several seeds.

    python experiments/benchmarks/netadapt_vs_uniform.py [--seeds 5] [--fraction 0.75] [--device pixel1]
        [--steps 20] [--final-steps 200] [--delta 0.04] [--select ratio] [--rules ratio,noise-aware,latency]
        [--out experiments/runs/netadapt_vs_uniform]

For each seed, MobileNetV3-Small (adapted to the proxy data as the proxies do) is trained once on
Fashion-MNIST; the target is `fraction` x its predicted latency on the device. Then:

- the uniform baseline is the widest `nas.core.spec.scale_width` multiplier whose predicted latency is
  <= the target (binary search). Its latency is a step function of the multiplier, so it lands below the
  target; it inherits the same largest-L2 filters (`nas.netadapt.surgery.shrink`);
- NetAdapt (`nas.netadapt.run_netadapt`, from the same weights) shrinks the seed to the target with
  `--select` ("netadapt[R]@target": the comparison at the target, where NetAdapt has more latency), and to
  the uniform network's own predicted latency once with every rule of `--rules` ("netadapt[R]"): those runs
  and the uniform network are compared at equal latency. The uniform network is fine-tuned for as many
  steps as netadapt[--select] saw along its path (iterations x T + final).

Every network is scored on the held-out split NetAdapt selects on ("val") and on a disjoint slice of the
validation pool that no selection saw ("test", the fair comparison); differences are paired by seed
(mean and 95% t interval, `nas.runtime.stats`). The iterations whose leading proposals were tied within
one binomial standard error of the val top-1 are counted per run. Every distinct architecture is
exported at the spec's own resolution and timed on this host with ONNX Runtime (one thread). The run
resumes: a second invocation with the same flags reuses the trained seeds and finished NetAdapt runs.
"""
import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nas.export.onnx import export_spec
from nas.latency.devices import get_device
from nas.core.counts import count_macs, count_params
from nas.budgets import NetAdaptBudget
from nas.runtime.stats import judge, paired_difference, seed_summary, verdict
from nas.netadapt.netadapt_config import SELECT_RULES, make_config, stream_seed
from nas.netadapt.finetune import ProxyTask, cpu_state
from nas.netadapt.proposals import predict_ms, standard_error
from nas.netadapt.netadapt_run import run_netadapt
from nas.runtime.files import load_state, save_state
from nas.accuracy.proxy_config import DataConfig, TrainConfig
from nas.accuracy.proxy_data import load_data
from nas.accuracy.training_core import evaluate_accuracy
from nas.core.spec import scale_width
from nas.core.spec_file import load_spec
from nas.runtime.files import atomic_write_text
from nas.runtime.jsonl import read_log
from nas.netadapt.surgery import shrink, structure

ROOT = Path(__file__).resolve().parents[2]


def uniform_multiplier(spec, target_ms: float, device, lo: float = 0.05, hi: float = 1.0) -> float:
    """Widest multiplier (to 1e-4) whose spec meets the target and keeps the seed's structure.

    Latency falls with the multiplier, so bisect on it; then step down past any multiplier whose
    rounding merges widths (a residual add appearing, or an expansion conv vanishing).
    """
    def fits(m: float) -> bool:
        return predict_ms(device, [scale_width(spec, m)])[0] <= target_ms

    if fits(hi):
        return hi
    if not fits(lo):
        sys.exit(f"even a {lo} width multiplier misses {target_ms:.3f} ms")
    while hi - lo > 1e-4:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    while structure(scale_width(spec, lo)) != structure(spec):
        lo -= 1e-3
        if lo <= 0:
            sys.exit("no width multiplier meets the target with the seed's structure")
    return lo


def test_split(task: ProxyTask, val_images: int, test_images: int):
    """The validation pool's images after the first `val_images` (those NetAdapt selects on)."""
    t = task.config.train
    pool = load_data(task.config.data, t.train_images, val_images + test_images, task.device)
    return replace(pool, val_x=pool.val_x[val_images:], val_y=pool.val_y[val_images:])


def test_top1(task: ProxyTask, data, spec, state) -> float:
    """Top-1 with the network's own (already re-estimated) BN statistics; 0 if outputs diverge."""
    model = task.model(spec, state).to(task.device, memory_format=torch.channels_last)
    accuracy, finite = evaluate_accuracy(model, data.batches("val", 500))
    return accuracy if finite else 0.0


def host_ms(spec, cache: dict, out: Path, runs: int) -> float:
    """ONNX Runtime median on this host, one thread, batch 1, at the spec's resolution."""
    key = spec.content_hash()
    if key not in cache:
        result = export_spec(spec, out / f"{key}.onnx", verify=False, time_it=True, threads=1, runs=runs)
        cache[key] = result["latency_ms"]
    return cache[key]


def row(method: str, seed: int, spec, target: float | None, pred: float, acc: float, test: float, steps: int,
        extra: dict) -> dict:
    return {"method": method, "seed": seed, "target_ms": target, "predicted_ms": pred, "accuracy": acc,
            "test_accuracy": test, "finetune_steps": steps,
            "params": count_params(spec), "macs": count_macs(spec), "arch": spec.to_string(), **extra}


def tie_counts(log_path: str) -> dict:
    """Iterations of a NetAdapt run, how many had more than one proposal within noise of the best,
    and the mean standard error of their val top-1."""
    records, _ = read_log(Path(log_path))
    # A run logged before iterations recorded their noise counts as having none.
    its = [r for r in records if r.get("type") == "iteration" and r["iteration"] > 0 and "noise" in r]
    return {"iterations": len(its), "tied_iterations": sum(len(r["noise"]["tied"]) > 1 for r in its),
            "mean_tied": float(np.mean([len(r["noise"]["tied"]) for r in its])) if its else 0.0,
            "mean_proposals": float(np.mean([len(r["proposals"]) for r in its])) if its else 0.0,
            "val_se": float(np.mean([r["noise"]["se"] for r in its])) if its else None}


def rule_list(text: str) -> list:
    rules = [r.strip() for r in text.split(",") if r.strip()]
    bad = [r for r in rules if r not in SELECT_RULES]
    if not rules or bad:
        raise argparse.ArgumentTypeError(f"--rules: each of {', '.join(SELECT_RULES)}, got {text!r}")
    return list(dict.fromkeys(rules))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "search_spaces/reference/mobilenetv3_small.yaml"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--fraction", type=float, default=0.75, help="target = fraction x the seed's predicted latency")
    p.add_argument("--device", default="pixel1")
    p.add_argument("--train-images", type=int, default=4000)
    p.add_argument("--val-images", type=int, default=1000, help="held-out images NetAdapt selects on")
    p.add_argument("--test-images", type=int, default=2000, help="further held-out images for the comparison")
    p.add_argument("--seed-steps", type=int, default=300, help="training steps of the seed network")
    p.add_argument("--steps", type=int, default=20, help="NetAdapt's T: fine-tune steps per proposal")
    p.add_argument("--final-steps", type=int, default=200)
    p.add_argument("--delta", type=float, default=0.04, help="latency cut per iteration (fraction of the seed's)")
    p.add_argument("--select", default="ratio", choices=SELECT_RULES,
                   help="the rule compared with the uniform multiplier (and run to the target)")
    p.add_argument("--rules", type=rule_list, default=["ratio", "noise-aware", "latency"],
                   help="rules run to the uniform network's latency, compared with each other (comma-separated)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    p.add_argument("--host-runs", type=int, default=200, help="timed ONNX Runtime runs per architecture")
    p.add_argument("--out", default=str(ROOT / "experiments/runs/netadapt_vs_uniform"))
    args = p.parse_args()
    if args.select not in args.rules:
        args.rules.insert(0, args.select)

    started = time.perf_counter()
    out = Path(args.out)
    spec = load_spec(args.spec)
    device = get_device(args.device)
    seed_ms = float(predict_ms(device, [spec])[0])
    target = args.fraction * seed_ms
    train = TrainConfig(train_images=args.train_images, val_images=args.val_images, steps=args.seed_steps,
                        batch_size=64, bn_images=500)
    budget = NetAdaptBudget("benchmark", train, steps=args.steps, final_steps=args.final_steps, delta=args.delta)
    data = DataConfig()
    multiplier = uniform_multiplier(spec, target, device)
    uniform = scale_width(spec, multiplier, name=f"{spec.name}-uniform")
    uniform_pred = float(predict_ms(device, [uniform])[0])
    print(f"{spec.name}: {seed_ms:.3f} ms on {args.device}; target {target:.3f} ms; "
          f"uniform multiplier {multiplier:.4f} -> {uniform_pred:.3f} ms", file=sys.stderr)

    rows, timings = [], {}
    arch_specs = {spec.to_string(): spec, uniform.to_string(): uniform}
    for seed in range(args.seeds):
        config = make_config(target, args.device, budget, data, seed, threads=args.threads)
        task = ProxyTask(config)
        test = test_split(task, args.val_images, args.test_images)
        seed_dir = out / f"seed{seed}"
        seed_pt = seed_dir / "seed.pt"
        if seed_pt.exists():
            state = load_state(seed_pt)
            seed_acc = task.run(spec, state, None, seed)["accuracy"]
        else:
            print(f"seed {seed}: training {spec.name} for {args.seed_steps} steps ...", file=sys.stderr)
            trained = task.run(spec, None, train, seed)
            state, seed_acc = trained["state"], trained["accuracy"]
            save_state(state, seed_pt)
        rows.append(row("seed", seed, spec, None, seed_ms, seed_acc, test_top1(task, test, spec, state), 0, {}))

        def netadapt(rule: str, to_ms: float, folder: str, method: str) -> dict:
            na = run_netadapt(spec, to_ms, device, weights=seed_pt, data=data, budget=budget,
                              out_dir=seed_dir / folder, resume=True, seed=seed, threads=args.threads, select=rule)
            steps = na["iterations"] * args.steps + args.final_steps
            arch_specs[na["spec"].to_string()] = na["spec"]
            na_test = test_top1(task, test, na["spec"], load_state(Path(na["weights_path"])))
            rows.append(row(method, seed, na["spec"], to_ms, na["latency_ms"], na["accuracy"], na_test, steps,
                            {"rule": rule, **tie_counts(na["log"])}))
            print(f"seed {seed}: {method} test top-1 {na_test:.4f} at {na['latency_ms']:.3f} ms "
                  f"({rows[-1]['tied_iterations']}/{na['iterations']} iterations tied)", file=sys.stderr)
            return rows[-1]

        # The cached run of the earlier benchmark (ratio to the target) lives in netadapt/.
        netadapt(args.select, target, "netadapt" if args.select == "ratio" else f"netadapt-{args.select}",
                 f"netadapt[{args.select}]@target")
        equal = {rule: netadapt(rule, uniform_pred, f"at-uniform-{rule}", f"netadapt[{rule}]") for rule in args.rules}

        steps = equal[args.select]["finetune_steps"]
        child = shrink(task.model(spec, state), task.adapt(uniform))
        tuned = task.run(uniform, cpu_state(child), config.finetune(steps), stream_seed(seed, 1 << 21))
        un_test = test_top1(task, test, uniform, tuned["state"])
        rows.append(row("uniform", seed, uniform, target, uniform_pred, tuned["accuracy"], un_test, steps,
                        {"multiplier": round(multiplier, 4)}))
        print(f"seed {seed}: uniform test top-1 {un_test:.4f} at {uniform_pred:.3f} ms ({steps} fine-tune steps)",
              file=sys.stderr)

    print("timing the architectures on this host (ONNX Runtime, 1 thread) ...", file=sys.stderr)
    for r in rows:
        r["host_ms"] = host_ms(arch_specs[r["arch"]], timings, out / "onnx", args.host_runs)

    comparisons = comparisons_of(args)
    print(table(rows, args, seed_ms, target, uniform_pred, comparisons))
    summary = {"spec": spec.name, "device": args.device, "seed_ms": seed_ms, "target_ms": target,
               "uniform_ms": uniform_pred, "multiplier": multiplier, "args": vars(args), "rows": rows,
               "differences": {f"{a} - {b}": paired(rows, a, b) for a, b, _ in comparisons},
               "wall_s": time.perf_counter() - started}
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    print(f"\nresults: {out / 'results.json'}  ({summary['wall_s'] / 60:.1f} min)")



def comparisons_of(args) -> list:
    """(method, baseline, what the pair shows): NetAdapt vs uniform at equal latency, and each rule vs
    the latency-only rule and vs ratio, all at the uniform network's latency."""
    main = f"netadapt[{args.select}]"
    pairs = [(main, "uniform", "equal latency"),
             (f"{main}@target", "uniform", "NetAdapt at the target, uniform below it: NOT equal latency")]
    for rule in args.rules:
        if rule != "latency" and "latency" in args.rules:
            pairs.append((f"netadapt[{rule}]", "netadapt[latency]", "equal latency: the rule vs the largest cut"))
    if "noise-aware" in args.rules and "ratio" in args.rules:
        pairs.append(("netadapt[noise-aware]", "netadapt[ratio]", "equal latency"))
    return pairs


def by_seed(rows: list, method: str) -> dict:
    return {r["seed"]: r for r in rows if r["method"] == method}


def paired(rows: list, a: str, b: str, key: str = "test_accuracy") -> dict:
    ra, rb = by_seed(rows, a), by_seed(rows, b)
    seeds = sorted(set(ra) & set(rb))
    diff = paired_difference([ra[s][key] for s in seeds], [rb[s][key] for s in seeds])
    return {**diff, "per_seed": [ra[s][key] - rb[s][key] for s in seeds],
            "ms": [float(np.mean([ra[s]["predicted_ms"] for s in seeds])),
                   float(np.mean([rb[s]["predicted_ms"] for s in seeds]))]}


def _mean_sd(values) -> str:
    s = seed_summary(values)
    return f"{s['mean']:.4f} ± {s['sd']:.4f}" if s["sd"] is not None else f"{s['mean']:.4f} (1 seed)"


def table(rows: list, args, seed_ms: float, target: float, uniform_ms: float, comparisons: list) -> str:
    def se_test(acc: float) -> float:
        return standard_error(acc, args.test_images)

    lines = [f"\n{Path(args.spec).stem} on {args.device}: seed {seed_ms:.3f} ms, target {target:.3f} ms "
             f"({args.fraction:g} x), uniform network {uniform_ms:.3f} ms; T = {args.steps}, final "
             f"{args.final_steps} steps, delta {args.delta:g}; val {args.val_images} images (selection), "
             f"test {args.test_images} (comparison)\n",
             "| method | seed | to ms | predicted ms | host ms | val top-1 | test top-1 ± SE | params | MMACs | "
             "fine-tune steps | tied iterations |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        to = "" if r["target_ms"] is None else f"{r['target_ms']:.3f}"
        tied = f"{r['tied_iterations']}/{r['iterations']}" if "tied_iterations" in r else ""
        lines.append(f"| {r['method']} | {r['seed']} | {to} | {r['predicted_ms']:.3f} | {r['host_ms']:.3f} | "
                     f"{r['accuracy']:.4f} | {r['test_accuracy']:.4f} ± {se_test(r['test_accuracy']):.4f} | "
                     f"{r['params']:,} | {r['macs'] / 1e6:.1f} | {r['finetune_steps']} | {tied} |")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines += ["", "Mean ± sd over seeds (sd: seed to seed; the test top-1 of one network on "
              f"{args.test_images} images has a binomial SE of about {se_test(0.85):.4f} on top).", "",
              "| method | seeds | mean predicted ms | mean host ms | val top-1 | test top-1 | tied iterations | "
              "mean tied / proposals | mean val SE |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for method in methods:
        sel = [r for r in rows if r["method"] == method]
        ties = ""
        if "tied_iterations" in sel[0]:
            ties = (f"{sum(r['tied_iterations'] for r in sel)}/{sum(r['iterations'] for r in sel)} | "
                    f"{np.mean([r['mean_tied'] for r in sel]):.1f} / {np.mean([r['mean_proposals'] for r in sel]):.1f}"
                    f" | {np.mean([r['val_se'] for r in sel if r['val_se'] is not None] or [np.nan]):.4f}")
        else:
            ties = " |  | "
        lines.append(f"| {method} | {len(sel)} | {np.mean([r['predicted_ms'] for r in sel]):.3f} | "
                     f"{np.mean([r['host_ms'] for r in sel]):.3f} | {_mean_sd([r['accuracy'] for r in sel])} | "
                     f"{_mean_sd([r['test_accuracy'] for r in sel])} | {ties} |")
    lines += ["", "Paired by seed, test top-1 (method - baseline; 95% t interval over seeds):", "",
              "| method | baseline | ms (method / baseline) | per seed | mean difference | 95% CI | judged | note |",
              "| --- | --- | --- | --- | ---: | --- | --- | --- |"]
    sentences = []
    for a, b, note in comparisons:
        d = paired(rows, a, b)
        ci = "n/a (1 seed)" if d["ci_low"] is None else f"{d['ci_low']:+.4f} to {d['ci_high']:+.4f}"
        lines.append(f"| {a} | {b} | {d['ms'][0]:.3f} / {d['ms'][1]:.3f} | "
                     f"{', '.join(f'{x:+.4f}' for x in d['per_seed'])} | {d['mean']:+.4f} | {ci} | {judge(d)} | "
                     f"{note} |")
        if note.startswith("equal latency"):
            sentences.append(verdict(a, b, d, d["ms"][0]))
    within = all(r["predicted_ms"] <= (r["target_ms"] or math.inf) + 1e-9 for r in rows)
    lines += [""] + [f"- {s}" for s in sentences]
    lines.append(f"- every network within its latency: {'yes' if within else 'NO'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
