"""Does the search find better networks than the alternatives, with fewer queries? Measured on ground truth.

    .venv/bin/python experiments/benchmarks/search_on_groundtruth.py [--settings all|NAME,...]
        [--arms guided-evolution,controller,random,evolution,ofa-evolution,tunas] [--seeds 10] [--budget 2000]
        [--long 50100] [--workers 2] [--out experiments/runs/search_on_groundtruth]
        [--table experiments/benchmarks/results/search_on_groundtruth.md]
        [--figure docs/figures/search_on_groundtruth.png]

The protocol of NAS benchmarks. Accuracy comes from others' ImageNet models (`ofa-imagenet`: OFA's
predictor; `accel-imagenet`: the surrogate of Accel-NASBench's records), latency from measured
tables (`note10`) or models (`pixel1`, `zcu102`): no training noise, so every difference between
arms is the search's. Each arm runs every seed for `--budget` accuracy queries (latency queries are
free); budgets 100, 300, 1,000 and 2,000 are prefixes of one run, read as an anytime curve.

Per setting, arm and budget: the best accuracy among the networks queried so far that meet the
target, and the share of the last 100 queries within +-5% of it (mean +- sd over seeds); paired
differences of the default (`guided-evolution`) with every other arm, seed by seed, with a 95% t
interval; the regret to the best network known for the setting (the best any arm ever queried,
and a long run of `ofa-evolution` over `--long` queries).

Arms: the project's default search (`guided-evolution`: evolution guided by a Bayesian linear model
of the accuracies so far, nas/search/guided.py) and OFA's evolution at its published settings
(population 100, parents 25%, mutation ratio 0.5, mutation probability 0.1), which only ever propose
networks that meet the target and are told their accuracy; MnasNet's controller (PPO, the default
before this benchmark), random search, the project's regularized evolution and TuNAS's REINFORCE
controller, each rewarded with the TuNAS absolute reward at the target.

Each (setting, arm, seed) run is kept in `--out/runs/` as soon as it ends (every query's latency and
accuracy), so an interrupted benchmark continues where it stopped; the tables go to `--table`
(and `--out/summary.json`), the anytime curves to `--figure`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BUDGETS = (100, 300, 1000, 2000)
ARMS = ("guided-evolution", "controller", "random", "evolution", "ofa-evolution", "tunas")
DEFAULT_ARM = "guided-evolution"  # the project's default search, chosen with this benchmark
TOLD_ACCURACY = ("ofa-evolution", "guided-evolution")  # they propose only networks under the target
LATE = 100          # "the final samples": the last LATE queries before a budget
NEAR = 0.05         # within +-5% of the target


@dataclass(frozen=True)
class Setting:
    name: str
    space: str
    device: str
    proxy: str
    target: float | None = None       # ms; None: a percentile of the space's sampled latencies
    percentile: float | None = None


SETTINGS = {s.name: s for s in [
    *(Setting(f"ofa-note10-{t}ms", "ofa_mobilenetv3", "note10", "ofa-imagenet", float(t)) for t in (15, 20, 25, 30)),
    *(Setting(f"accel-pixel1-p{p}", "accel_mnasnet", "pixel1", "accel-imagenet", percentile=p) for p in (25, 50, 75)),
    Setting("accel-zcu102-p50", "accel_mnasnet", "zcu102", "accel-imagenet", percentile=50),
]}


@lru_cache(maxsize=None)
def parts(space_name: str, device_name: str, proxy_name: str):
    from nas.accuracy.proxy import make_proxy
    from nas.core.space import load_space
    from nas.latency.devices import get_device

    return load_space(space_name), get_device(device_name), make_proxy(proxy_name)


def target_of(setting: Setting) -> float:
    """The setting's target: given, or a percentile of 10,000 random networks' latencies (seed 0)."""
    if setting.target is not None:
        return setting.target
    space, device, _ = parts(setting.space, setting.device, setting.proxy)
    rng = np.random.default_rng(0)
    ms = device.predict_many([space.decode(space.sample(rng)) for _ in range(10_000)])[:, 0]
    return round(float(np.percentile(ms, setting.percentile)), 2)


def parse_arm(arm: str) -> tuple[str, dict[str, str]]:
    """`name[:key=value+flag+...]`, e.g. `controller:reward=hard+lr=3e-3+dedup` (the ablations)."""
    name, _, rest = arm.partition(":")
    options = dict((kv.split("=", 1) + ["1"])[:2] for kv in rest.split("+") if kv)
    return name, options


def make_arm(arm: str, space, device, target: float, seed: int):
    from dataclasses import replace

    from nas.search.algorithms import make_algorithm, search_controller_config
    from nas.search.guided import token_latency
    from nas.search.reward import RewardConfig

    name, o = parse_arm(arm)
    reward = {"tunas": RewardConfig.tunas(target), "hard": RewardConfig.hard(target),
              "soft": RewardConfig.soft(target)}[o.get("reward", "tunas")]
    latency = token_latency(space, device)
    if name == "ofa-evolution":
        return make_algorithm(name, space, seed=seed, feasible=lambda t: latency([t])[0] <= target), reward
    if name == "guided-evolution":
        tuned = {k: float(o[k]) for k in ("thompson", "alpha") if k in o}
        tuned.update({k: int(o[k]) for k in ("batch", "start", "parents", "candidates", "draws") if k in o})
        return make_algorithm(name, space, seed=seed, latency=latency, target_ms=target, **tuned), reward
    options = {}
    if name in ("controller", "tunas"):
        options["batch_size"] = int(o.get("batch", 16))
        tuned = {k: float(o[k]) for k in ("lr", "entropy_weight", "baseline_decay") if k in o}
        if "ppo_epochs" in o:
            tuned["ppo_epochs"] = int(o["ppo_epochs"])
        if tuned and name == "controller":
            options["config"] = replace(search_controller_config(), **tuned)
    return make_algorithm(name, space, seed=seed, **options), reward


def run_one(setting: Setting, arm: str, seed: int, budget: int, target: float) -> dict:
    """One search: the latency and accuracy of every query, in order, and where its time went."""
    import torch

    from nas.search.search_loop import Evaluator

    torch.set_num_threads(1)
    space, device, proxy = parts(setting.space, setting.device, setting.proxy)
    algorithm, reward = make_arm(arm, space, device, target, seed)
    name, options = parse_arm(arm)
    dedup = "dedup" in options  # a network asked again is answered from the log: no query spent
    evaluator = Evaluator(device, proxy, reward)
    lat, acc, seen = [], [], {}
    clock = {"ask": 0.0, "decode": 0.0, "evaluate": 0.0, "tell": 0.0}
    start, asked, best = time.perf_counter(), 0, (float("-inf"), None)
    while len(lat) < budget and asked < 3 * budget:  # a policy repeating itself ends the run
        t0 = time.perf_counter()
        batch = []
        while len(batch) < min(128, budget - len(lat)) and (s := algorithm.ask()) is not None:
            batch.append(s)
        asked += len(batch)
        t1 = time.perf_counter()
        specs = [space.decode(s.tokens) for s in batch]
        t2 = time.perf_counter()
        records = evaluator.records(batch, specs, evaluator.evaluate_many(specs))
        t3 = time.perf_counter()
        for s, r in zip(batch, records):
            algorithm.tell(s.index, r["accuracy"] if name in TOLD_ACCURACY else r["reward"])
            if dedup and r["arch_hash"] in seen:
                continue
            seen[r["arch_hash"]] = True
            if len(lat) < budget:
                lat.append(r["latency_ms"])
                acc.append(r["accuracy"])
                if r["latency_ms"] <= target and r["accuracy"] > best[0]:
                    best = (r["accuracy"], r["arch"])
        t4 = time.perf_counter()
        for key, dt in zip(clock, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            clock[key] += dt
    return {"setting": setting.name, "arm": arm, "seed": seed, "target": target, "latency": lat, "accuracy": acc,
            "seconds": time.perf_counter() - start, "clock": clock, "asked": asked,
            "distinct": len(seen), "best_arch": best[1]}


def safe(arm: str) -> str:
    return arm.replace(":", "_").replace("=", "-")


def _job(args) -> str:
    setting_name, arm, seed, budget, target, path = args
    result = run_one(SETTINGS[setting_name], arm, seed, budget, target)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)
    return f"{setting_name} {arm} seed {seed}: {result['seconds']:.1f} s"


# ---- summaries -------------------------------------------------------------------------------------

def best_feasible(run: dict, budget: int) -> float:
    lat, acc = np.asarray(run["latency"][:budget]), np.asarray(run["accuracy"][:budget])
    ok = lat <= run["target"]
    return float(acc[ok].max()) if ok.any() else float("nan")


def near_share(run: dict, budget: int) -> float:
    lat = np.asarray(run["latency"][max(0, budget - LATE):budget])
    return float(np.mean(np.abs(lat / run["target"] - 1) <= NEAR))


def summarise(runs: list[dict], long_best: dict[str, float], arms: list[str]) -> dict:
    from nas.runtime.stats import paired_difference

    out: dict = {}
    for setting in dict.fromkeys(r["setting"] for r in runs):
        mine = [r for r in runs if r["setting"] == setting]
        known = max([long_best.get(setting, float("-inf"))] +
                    [best_feasible(r, len(r["accuracy"])) for r in mine])
        rows = []
        for budget in BUDGETS:
            by_arm = {a: sorted((r for r in mine if r["arm"] == a and len(r["accuracy"]) >= budget),
                                key=lambda r: r["seed"]) for a in arms}
            base = {r["seed"]: best_feasible(r, budget) for r in by_arm.get(DEFAULT_ARM, [])}
            for arm in arms:
                got = by_arm[arm]
                if not got:
                    continue
                best = np.array([best_feasible(r, budget) for r in got])
                finite = best[np.isfinite(best)]
                row = {"budget": budget, "arm": arm, "seeds": len(got),
                       "best_mean": float(finite.mean()) if finite.size else float("nan"),
                       "best_sd": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
                       "met": int(np.isfinite(best).sum()),
                       "near_mean": float(np.mean([near_share(r, budget) for r in got])),
                       "regret_mean": float((known - finite).mean()) if finite.size else float("nan")}
                # seeds where both found a network meeting the target (none may have, early on)
                paired = [(base[r["seed"]], b) for r, b in zip(got, best)
                          if r["seed"] in base and np.isfinite(base[r["seed"]]) and np.isfinite(b)]
                if arm != DEFAULT_ARM and len(paired) > 1:
                    row["default_minus_this"] = paired_difference([a for a, _ in paired], [b for _, b in paired])
                rows.append(row)
        out[setting] = {"target": mine[0]["target"], "best_known": known, "long_best": long_best.get(setting),
                        "rows": rows}
    return out


def table(summary: dict) -> str:
    lines = ["Accuracies are predicted ImageNet top-1 (OFA's accuracy predictor; the surrogate of Accel-NASBench's "
             "records), in %. best: the best network meeting the target among the queries so far (mean ± sd over "
             f"seeds); near: share of the last {LATE} queries within ±{NEAR:.0%} of the target; regret: best known "
             f"− best; {DEFAULT_ARM} − arm: paired by seed, 95% t interval, points.", ""]
    for setting, s in summary.items():
        lines += [f"### {setting}: target {s['target']:g} ms; best known {100 * s['best_known']:.2f}%"
                  + (f" (long run {100 * s['long_best']:.2f}%)" if s.get("long_best") else ""), "",
                  f"| queries | arm | best % | near | regret, points | {DEFAULT_ARM} − arm, points [95% CI] |",
                  "| ---: | --- | ---: | ---: | ---: | ---: |"]
        for r in s["rows"]:
            d = r.get("default_minus_this")
            diff = (f"{100 * d['mean']:+.2f} [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}]"
                    if d and d["ci_low"] is not None else "")
            met = "" if r["met"] == r["seeds"] else f" ({r['met']}/{r['seeds']} met)"
            lines.append(f"| {r['budget']:,} | {r['arm']} | {100 * r['best_mean']:.2f} ± {100 * r['best_sd']:.2f}{met} | "
                         f"{r['near_mean']:.0%} | {100 * r['regret_mean']:.2f} | {diff} |")
        lines.append("")
    return "\n".join(lines)


def plot(runs: list[dict], summary: dict, arms: list[str], path: Path) -> None:
    from nas.runtime.plots import pyplot, save_figure

    plt = pyplot()
    settings = list(summary)
    cols = 4
    rows = (len(settings) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, setting in zip(axes.flat, settings):
        for arm in arms:
            mine = [r for r in runs if r["setting"] == setting and r["arm"] == arm]
            if not mine:
                continue
            n = min(len(r["accuracy"]) for r in mine)
            xs = np.unique(np.geomspace(10, n, 40).astype(int))
            curves = np.array([[best_feasible(r, x) for x in xs] for r in mine])
            ax.plot(xs, 100 * np.nanmean(curves, axis=0), label=arm)
        ax.axhline(100 * summary[setting]["best_known"], color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_title(f"{setting} ({summary[setting]['target']:g} ms)", fontsize=9)
        ax.set_xlabel("accuracy queries")
        ax.set_ylabel("best top-1 meeting the target (%)")
    for ax in list(axes.flat)[len(settings):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Anytime: mean over seeds; dotted: best known. Predicted ImageNet top-1 (others' models)")
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="all")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=max(BUDGETS))
    ap.add_argument("--long", type=int, default=50_100, help="queries of the long run (0: none)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments/runs/search_on_groundtruth")
    ap.add_argument("--table", type=Path, default=ROOT / "experiments/benchmarks/results/search_on_groundtruth.md")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs/figures/search_on_groundtruth.png")
    args = ap.parse_args()
    settings = list(SETTINGS) if args.settings == "all" else args.settings.split(",")
    arms = args.arms.split(",")
    for name in settings:
        if name not in SETTINGS:
            ap.error(f"--settings: unknown {name!r} (one of {', '.join(SETTINGS)})")
    for arm in arms:
        if parse_arm(arm)[0] not in ARMS:
            ap.error(f"--arms: unknown {arm!r} (one of {', '.join(ARMS)}, optionally with :key=value+flag+...)")
    runs_dir = args.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    targets = {name: target_of(SETTINGS[name]) for name in settings}
    jobs = []
    for name in settings:
        for arm in arms:
            for seed in range(args.seeds):
                path = runs_dir / f"{name}.{safe(arm)}.s{seed}.json"
                if not path.exists():
                    jobs.append((name, arm, seed, args.budget, targets[name], path))
        if args.long:
            path = runs_dir / f"{name}.long.json"
            if not path.exists():
                jobs.append((name, "ofa-evolution", 1000, args.long, targets[name], path))
    started = time.perf_counter()
    if jobs:
        with ProcessPoolExecutor(args.workers) as pool:
            for i, message in enumerate(pool.map(_job, jobs), 1):
                print(f"[{i}/{len(jobs)}] {message}", flush=True)
    runs, long_best = [], {}
    for name in settings:
        for arm in arms:
            for seed in range(args.seeds):
                path = runs_dir / f"{name}.{safe(arm)}.s{seed}.json"
                if path.exists():
                    runs.append(json.loads(path.read_text()))
        path = runs_dir / f"{name}.long.json"
        if args.long and path.exists():
            long_best[name] = best_feasible(json.loads(path.read_text()), args.long)
    summary = summarise(runs, long_best, arms)
    text = table(summary)
    cost = {arm: {k: float(np.median([r["clock"][k] / len(r["accuracy"]) * 1e3 for r in runs if r["arm"] == arm]))
                  for k in ("ask", "decode", "evaluate", "tell")} for arm in arms}
    text += "\nMilliseconds a query (median over runs), by part: " + "; ".join(
        f"{arm}: " + ", ".join(f"{k} {v:.2f}" for k, v in c.items()) for arm, c in cost.items()) + "\n"
    command = "python experiments/benchmarks/search_on_groundtruth.py " + " ".join(sys.argv[1:])
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(f"{command}\n\n{text}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(runs, summary, arms, args.figure)
    print(text)
    print(f"{len(jobs)} runs in {time.perf_counter() - started:.0f} s; {args.table}")


if __name__ == "__main__":
    main()
