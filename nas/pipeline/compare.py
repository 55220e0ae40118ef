"""The final network against the obvious alternatives at the same latency, with confidence.

Each network (the final one; the family's MobileNetV3 scaled in width to the target; from the
default budget up, the same MobileNetV3 brought to the target by NetAdapt) is trained from scratch
with the budget's final recipe at k seeds; seed i is the same for every network, so differences
are paired by seed. Every training is appended to compare/trainings.jsonl as it ends, so an
interrupted compare stage resumes without training anything twice.
"""
from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

from nas.accuracy.proxy import TrainingProxy, make_proxy
from nas.accuracy.proxy_config import ProxyConfig
from nas.budgets import Budget
from nas.core.counts import count_macs, count_params
from nas.core.spec import ArchSpec, save_spec, scale_width, spec_from_dict
from nas.core.spec_file import load_spec
from nas.pipeline.baselines import TOLERANCE, width_scaled
from nas.runtime.jsonl import JsonlWriter, jsonable, read_jsonl
from nas.runtime.paths import REFERENCE_DIR
from nas.runtime.session import available_cpus, select_device

log = logging.getLogger(__name__)

FAMILY_REFERENCES = {"large": "mobilenetv3_large", "small": "mobilenetv3_small"}


def family_reference(family: str, target_ms: float, device) -> ArchSpec:
    """The space family's MobileNetV3; for another family, the one whose latency is nearer the target."""
    if family in FAMILY_REFERENCES:
        return load_spec(REFERENCE_DIR / f"{FAMILY_REFERENCES[family]}.yaml")
    specs = [load_spec(REFERENCE_DIR / f"{name}.yaml") for name in FAMILY_REFERENCES.values()]
    return min(specs, key=lambda s: abs(math.log(device.predict(s).ms / target_ms)))


def seeds_of(budget: Budget, seed: int) -> list[int]:
    """Run seed s trains at k*s .. k*s+k-1: runs at different seeds share no training, so their
    baselines' results are independent (seeds s .. s+k-1 would share k-1 of k between neighbours)."""
    k = budget.accuracy.final_seeds
    return [k * seed + i for i in range(k)]


def baseline_networks(ctx) -> list[dict[str, Any]]:
    """(name, kind, spec, note) of the final network and each of the run's baselines (--baselines, else the budget's)."""
    config, p, target = ctx.config, ctx.prepared, ctx.config.target_ms
    out = ctx.run_dir / "compare"
    networks = [{"name": ctx.final.name, "kind": "final", "spec": ctx.final, "note": ""}]
    reference = family_reference(p.space.family, target, p.device)
    scaled = width_scaled(reference, target, p.device)
    if "width_scaled" in ctx.baselines:
        note = scaled.describe() + ("" if scaled.within else f"; no width lands within {TOLERANCE:.0%} of the target")
        networks.append({"name": scaled.spec.name, "kind": "width_scaled", "spec": scaled.spec, "note": note})
    if "netadapted" in ctx.baselines:
        from nas.netadapt.netadapt_run import run_netadapt  # deferred: loads torch

        # NetAdapt only narrows: below the target, it starts from the width step just above it. Its
        # choices are the pipeline's; its final fine-tune is skipped: only the architecture is kept.
        start = reference if p.device.predict(reference).ms > target else scale_width(reference, scaled.wider)
        budget = replace(ctx.budget.netadapt.in_pipeline(), final_steps=0)
        result = run_netadapt(start, target_ms=target, device=p.device, budget=budget,
                              data=p.data, out_dir=out / "netadapt", resume=ctx.resume, seed=config.seed,
                              trial_retries=config.trial_retries, address=config.address)
        spec = replace(result["spec"], name=f"{reference.name}_netadapted")
        networks.append({"name": spec.name, "kind": "netadapted", "spec": spec,
                         "note": f"NetAdapt from {start.name}, {result['iterations']} iteration(s)"})
    for n in networks[1:]:
        save_spec(n["spec"], out / f"{n['kind']}.yaml")
    return networks


def _train_one(job: tuple) -> tuple:
    """One job in a worker process. A training: (key, spec dict, proxy config dict, weights path or
    None) -> (key, result); a side job: (key, function, args) -> (key, its result)."""
    if callable(job[1]):
        key, fn, args = job
        return key, fn(*args)

    key, spec, config, weights = job
    proxy = TrainingProxy("final", ProxyConfig.from_dict(config))
    return key, proxy.evaluate(spec_from_dict(spec, source="compare"), weights_out=weights)


def final_weights_path(run_dir: Path, seeds: list[int]) -> Path:
    """Where the final network's first-seed training keeps its weights (the int8 check's network)."""
    return run_dir / "compare" / f"final-seed{seeds[0]}.pt"


def _worker_init(parent: int) -> None:
    """Ctrl-C is the parent's (it stops the workers itself); a parent killed outright takes its
    workers with it (Linux: PR_SET_PDEATHSIG), so no training goes on for nobody."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker ends when it next reads its queue
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def train_networks(networks: list[dict[str, Any]], seeds: list[int], ctx,
                   side: tuple | None = None) -> dict[tuple[str, int], dict]:
    """Every (network kind, seed) training of the final recipe, reloaded from trainings.jsonl or run now.

    Each training runs on one thread, one per CPU at a time (on 2 cores, 1.35x the throughput of
    one training on both; and a result that does not depend on how many CPUs the run had); on CUDA,
    one at a time here. Each result is logged the moment it ends, so an interruption loses only
    the trainings still running. The final network's first-seed training keeps its weights.
    `side`, (function, args) of a single-threaded job that needs no training (the deployment's
    conversions), is queued after the trainings: 9 trainings on 2 workers leave one CPU idle for
    the last one, and the side job fills it.
    """
    path: Path = ctx.run_dir / "compare" / "trainings.jsonl"
    proxies = {s: make_proxy("train", ctx.budget, data=ctx.prepared.data, seed=s, train=ctx.budget.accuracy.final,
                             threads=1) for s in seeds}
    done = {(r["arch_hash"], r["fingerprint"]): r for r in read_jsonl(path)
            if isinstance(r, dict) and {"arch_hash", "fingerprint", "accuracy"} <= set(r)}
    jobs = {}
    for n in networks:
        for s in seeds:
            key = (n["spec"].content_hash(), proxies[s].fingerprint())  # the recipe and seed
            if key not in done and key not in jobs:
                jobs[key] = (n, s)
    weights_for = {(networks[0]["spec"].content_hash(), proxies[seeds[0]].fingerprint()):
                   str(final_weights_path(ctx.run_dir, seeds))}
    cuda = select_device(proxies[seeds[0]].config.device).type == "cuda"
    workers = 1 if cuda else min(available_cpus(), len(jobs) + (side is not None))
    writer = JsonlWriter(path) if jobs else None

    def record(key, n, s, r) -> None:
        if n is None:  # the side job
            return
        done[key] = {"arch_hash": key[0], "fingerprint": key[1], "name": n["name"], "seed": s,
                     "accuracy": r["accuracy"], "failed": r["failed"], "reason": r.get("reason"),
                     "seconds": r["seconds"]}
        writer.write(jsonable(done[key]))
        log.info(f"compare: {n['name']} ({n['kind']}), seed {s}: top-1 {r['accuracy']:.4f} ({r['seconds']:.0f} s)")

    try:
        if workers <= 1:
            for key, (n, s) in jobs.items():
                record(key, n, s, proxies[s].evaluate(n["spec"], weights_out=weights_for.get(key)))
            if side is not None:
                side[0](*side[1])
        elif jobs or side is not None:
            _train_in_pool(jobs, proxies, workers, record, weights_for, side)
    finally:
        if writer is not None:
            writer.close()
    return {(n["kind"], s): done[(n["spec"].content_hash(), proxies[s].fingerprint())]
            for n in networks for s in seeds}


def _train_in_pool(jobs: dict, proxies: dict, workers: int, record, weights_for: dict, side: tuple | None) -> None:
    import multiprocessing  # deferred: multiprocessing (~20 ms), for a pool of trainings only

    log.info(f"compare: {len(jobs)} trainings, {workers} at a time")
    work = [(key, n["spec"].to_dict(), proxies[s].config.to_dict(), weights_for.get(key))
            for key, (n, s) in jobs.items()]
    if side is not None:
        work.append((("side", ""), *side))
        jobs = {**jobs, ("side", ""): (None, None)}
    # Leaving the block terminates the workers: at the end they are idle; on an interruption or an
    # error no training goes on without its parent.
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(os.getpid(),)) as pool:
        for key, result in pool.imap_unordered(_train_one, work):
            n, s = jobs[key]
            record(key, n, s, result)


def comparison(networks: list[dict[str, Any]], trainings: dict[tuple[str, int], dict], seeds: list[int],
               device, target_ms: float) -> dict[str, Any]:
    """`rows` (one per network: latency, accuracy mean and sd over the seeds, and for a baseline the
    paired difference final - baseline with its 95% CI) and the one-sentence `verdict`."""
    from nas.runtime.stats import judge, paired_difference, seed_summary, verdict  # deferred: scipy.stats costs ~1.5 s

    final_acc = [trainings[("final", s)]["accuracy"] for s in seeds]
    rows, clauses = [], []
    for n in networks:
        accuracies = [trainings[(n["kind"], s)]["accuracy"] for s in seeds]
        summary = seed_summary(accuracies)
        latency = float(device.predict(n["spec"]).ms)
        row = {"name": n["name"], "kind": n["kind"], "latency_ms": round(latency, 3),
               "latency_vs_target_pct": round(100 * (latency / target_ms - 1), 2),
               "accuracy_mean": summary["mean"], "accuracy_sd": summary["sd"], "seeds": summary["n"],
               "accuracies": accuracies, "failed_seeds": sum(trainings[(n["kind"], s)]["failed"] for s in seeds),
               "params": count_params(n["spec"]), "macs": count_macs(n["spec"]), "arch": n["spec"].to_string(),
               "note": n["note"]}
        if n["kind"] != "final":
            diff = paired_difference(final_acc, accuracies)
            row["difference"] = diff  # final - this baseline, paired by seed
            row["judgement"] = judge(diff)
            clauses.append(verdict("the final network", f"{n['name']} ({latency:.3g} ms)", diff, target_ms))
        rows.append(row)
    text = "; ".join(clauses) if clauses else "no baseline to compare with"
    return {"rows": rows, "verdict": text[0].upper() + text[1:], "seeds": seeds}


def run_comparison(ctx, side: tuple | None = None) -> dict[str, Any]:
    """The compare stage: baselines, trainings, rows and verdict. `side`, (function, args) of a job
    that needs no training (the deploy stage's conversions, which the pipeline passes), runs beside
    the trainings (train_networks)."""
    networks = baseline_networks(ctx)
    seeds = seeds_of(ctx.budget, ctx.config.seed)
    trainings = train_networks(networks, seeds, ctx, side=side)
    result = comparison(networks, trainings, seeds, ctx.prepared.device, ctx.config.target_ms)
    log.info(result["verdict"])
    return result
def latency_points(device_name: str, device, final: ArchSpec, measured: float, predicted: float):
    """Predicted vs measured: on the host, the final network; on a calibrated phone, its calibration set."""
    from nas.latency.backend import parse_host_name  # deferred: loads torch

    if parse_host_name(device_name) is not None:  # host, host-litert, and their :int8
        return [{"name": "final", "predicted_ms": predicted, "measured_ms": measured}], \
            f"{device_name}: predicted vs measured"
    info = getattr(device, "info", None) or {}
    points = []
    for row in info.get("networks", []) if isinstance(info, dict) else []:
        if {"fitted_ms", "published_ms"} <= set(row):
            points.append({"name": row.get("network", row.get("name", "")), "predicted_ms": row["fitted_ms"],
                           "measured_ms": row["published_ms"]})
    return points, f"{device_name}: model vs published end-to-end latency"
