"""NetAdapt vs a uniform width multiplier: same target latency, same fine-tuning, several seeds.

    python experiments/benchmarks/netadapt_vs_uniform.py [--seeds 3] [--fraction 0.75] [--device pixel1]
        [--steps 20] [--final-steps 200] [--delta 0.04] [--out experiments/runs/netadapt_vs_uniform]

For each seed, MobileNetV3-Small (adapted to the proxy data as the proxies do) is trained once on
Fashion-MNIST; the target is `fraction` x its predicted latency on the device. Then:

- NetAdapt shrinks it (`nas.netadapt.run_netadapt`, starting from those weights);
- the uniform baseline is the widest `nas.core.spec.scale_width` multiplier whose predicted latency is
  <= the target (binary search), inheriting the same largest-L2 filters (`nas.netadapt.surgery.shrink`) and
  fine-tuned for as many steps as NetAdapt's result saw along its path (iterations x T + final).

Both are scored on the held-out split NetAdapt selects on ("val") and on a disjoint slice of the
validation pool that no selection saw ("test", the fair comparison); every distinct architecture is
exported at the spec's own resolution and timed on this host with ONNX Runtime (one thread). The run resumes: a
second invocation with the same flags reuses finished NetAdapt runs.
"""
import argparse
import json
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
from nas.netadapt.config import make_config, stream_seed
from nas.netadapt.finetune import ProxyTask, cpu_state
from nas.netadapt.proposals import predict_ms
from nas.netadapt.run import run_netadapt
from nas.runtime.files import load_state, save_state
from nas.accuracy.config import DataConfig, TrainConfig
from nas.accuracy.data import load_data
from nas.accuracy.train import evaluate_accuracy
from nas.core.spec import load_spec, scale_width
from nas.runtime.files import atomic_write_text
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


def row(method: str, seed: int, spec, pred: float, acc: float, test: float, steps: int, extra: dict) -> dict:
    return {"method": method, "seed": seed, "predicted_ms": pred, "accuracy": acc, "test_accuracy": test,
            "finetune_steps": steps,
            "params": count_params(spec), "macs": count_macs(spec), "arch": spec.to_string(), **extra}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "search_spaces/reference/mobilenetv3_small.yaml"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--fraction", type=float, default=0.75, help="target = fraction x the seed's predicted latency")
    p.add_argument("--device", default="pixel1")
    p.add_argument("--train-images", type=int, default=4000)
    p.add_argument("--val-images", type=int, default=1000, help="held-out images NetAdapt selects on")
    p.add_argument("--test-images", type=int, default=2000, help="further held-out images for the comparison")
    p.add_argument("--seed-steps", type=int, default=300, help="training steps of the seed network")
    p.add_argument("--steps", type=int, default=20, help="NetAdapt's T: fine-tune steps per proposal")
    p.add_argument("--final-steps", type=int, default=200)
    p.add_argument("--delta", type=float, default=0.04, help="latency cut per iteration (fraction of the seed's)")
    p.add_argument("--select", default="ratio", choices=("ratio", "accuracy"))
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    p.add_argument("--host-runs", type=int, default=200, help="timed ONNX Runtime runs per architecture")
    p.add_argument("--out", default=str(ROOT / "experiments/runs/netadapt_vs_uniform"))
    args = p.parse_args()

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
        config = make_config(target, args.device, budget, data, seed, threads=args.threads, select=args.select)
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
        rows.append(row("seed", seed, spec, seed_ms, seed_acc, test_top1(task, test, spec, state), 0, {}))

        na = run_netadapt(spec, target, device, weights=seed_pt, data=data, budget=budget,
                          out_dir=seed_dir / "netadapt", resume=True, seed=seed, threads=args.threads,
                          select=args.select)
        na_steps = na["iterations"] * args.steps + args.final_steps
        arch_specs[na["spec"].to_string()] = na["spec"]
        na_test = test_top1(task, test, na["spec"], load_state(Path(na["weights_path"])))
        rows.append(row("netadapt", seed, na["spec"], na["latency_ms"], na["accuracy"], na_test, na_steps,
                        {"iterations": na["iterations"]}))

        child = shrink(task.model(spec, state), task.adapt(uniform))
        tuned = task.run(uniform, cpu_state(child), config.finetune(na_steps), stream_seed(seed, 1 << 21))
        un_test = test_top1(task, test, uniform, tuned["state"])
        rows.append(row("uniform", seed, uniform, uniform_pred, tuned["accuracy"], un_test, na_steps,
                        {"multiplier": round(multiplier, 4)}))
        print(f"seed {seed}: test top-1 netadapt {na_test:.4f} at {na['latency_ms']:.3f} ms, uniform "
              f"{un_test:.4f} at {uniform_pred:.3f} ms ({na_steps} fine-tune steps each)", file=sys.stderr)

    print("timing the architectures on this host (ONNX Runtime, 1 thread) ...", file=sys.stderr)
    for r in rows:
        r["host_ms"] = host_ms(arch_specs[r["arch"]], timings, out / "onnx", args.host_runs)

    print(table(rows, args, seed_ms, target))
    summary = {"spec": spec.name, "device": args.device, "seed_ms": seed_ms, "target_ms": target,
               "multiplier": multiplier, "args": vars(args), "rows": rows, "wall_s": time.perf_counter() - started}
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    print(f"\nresults: {out / 'results.json'}  ({summary['wall_s'] / 60:.1f} min)")


def table(rows: list, args, seed_ms: float, target: float) -> str:
    lines = [f"\n{Path(args.spec).stem} on {args.device}: seed {seed_ms:.3f} ms, target {target:.3f} ms "
             f"({args.fraction:g} x); T = {args.steps}, final {args.final_steps} steps, delta {args.delta:g}\n",
             "| method | seed | predicted ms | host ms | val top-1 | test top-1 | params | MMACs | fine-tune steps |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['seed']} | {r['predicted_ms']:.3f} | {r['host_ms']:.3f} | "
                     f"{r['accuracy']:.4f} | {r['test_accuracy']:.4f} | {r['params']:,} | {r['macs'] / 1e6:.1f} | "
                     f"{r['finetune_steps']} |")
    lines += ["", "| method | mean predicted ms | mean host ms | mean val top-1 | mean test top-1 ± std |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for method in ("seed", "netadapt", "uniform"):
        sel = [r for r in rows if r["method"] == method]
        test = np.array([r["test_accuracy"] for r in sel])
        std = test.std(ddof=1) if len(test) > 1 else 0.0
        lines.append(f"| {method} | {np.mean([r['predicted_ms'] for r in sel]):.3f} | "
                     f"{np.mean([r['host_ms'] for r in sel]):.3f} | {np.mean([r['accuracy'] for r in sel]):.4f} | "
                     f"{test.mean():.4f} ± {std:.4f} |")
    na = {r["seed"]: r for r in rows if r["method"] == "netadapt"}
    un = {r["seed"]: r for r in rows if r["method"] == "uniform"}
    gaps = [na[s]["test_accuracy"] - un[s]["test_accuracy"] for s in na]
    within = all(r["predicted_ms"] <= target + 1e-9 for r in rows if r["method"] != "seed")
    wins = sum(g >= 0 for g in gaps)
    lines.append(f"\nNetAdapt - uniform test top-1 per seed: {', '.join(f'{g:+.4f}' for g in gaps)} "
                 f"(mean {np.mean(gaps):+.4f}); NetAdapt at least as accurate in {wins}/{len(gaps)} seeds; "
                 f"both within the target in every seed: {'yes' if within else 'NO'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
