"""The whole pipeline: search -> best spec -> NetAdapt to the target -> export and check -> report.

    python -m nas.search --target-ms 50 [--space auto|mobilenetv3_large|mobilenetv3_small|PATH]
        [--device pixel1|host|NAME] [--proxy NAME] [--budget smoke|default|paper] [--seed N]
        [--out DIR] [--resume] [--address RAY_ADDRESS] [--config FILE] [--json]

Every stage's result lands in the run directory before the next starts (`pipeline.json` says
which are done), so `--resume` picks up at the first unfinished stage; the search stage itself
resumes sample by sample.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.runtime.cli import (ArgumentParser, emit, non_negative_int, positive_float, positive_int, resume_command,
                     run_main, set_resume_hint)
from nas.runtime.errors import UserError
from nas.runtime.paths import REFERENCE_DIR, RUNS_DIR
from nas.core.spec import ArchSpec, load_spec, save_spec, scale_width
from nas.runtime.files import atomic_write_text, load_yaml_file

FAMILY_SPACES = {"large": "mobilenetv3_large", "small": "mobilenetv3_small"}
FAMILY_REFERENCES = {"large": "mobilenetv3_large", "small": "mobilenetv3_small"}


@dataclass(frozen=True)
class SearchBudget:
    """What one run may spend. `default` fits in 15 minutes on a 2-core laptop CPU."""

    name: str
    samples: int            # architectures the searcher evaluates
    batch_size: int         # controller PPO batch (MnasNet: one update per batch)
    proxy: str              # the search's default accuracy proxy
    proxy_budget: str       # nas.proxies budget for training (score map, final accuracy, references)
    netadapt_budget: str    # nas.netadapt budget
    map_networks: int       # networks trained to map a zero-cost score onto accuracy
    netadapt: tuple = ()    # overrides of the NetAdapt budget, as (field, value) pairs


# The N=20 audit (README): every zero-cost score ranks weakly on the proxy task; MACs ranks best
# among them (Spearman 0.34, tau 0.24, one-epoch training 0.46 / 0.32) and costs nothing, so the
# default budget can afford the thousands of samples a controller needs and spends its training
# on NetAdapt. The paper budget trains every sample for 5 epochs, as MnasNet did, on Ray.
BUDGETS = {
    "smoke": SearchBudget("smoke", samples=96, batch_size=16, proxy="macs", proxy_budget="smoke",
                          netadapt_budget="smoke", map_networks=3, netadapt=(("delta", 0.1),)),
    "default": SearchBudget("default", samples=2000, batch_size=16, proxy="macs", proxy_budget="default",
                            netadapt_budget="default", map_networks=8,
                            netadapt=(("delta", 0.04), ("final_steps", 200))),
    "paper": SearchBudget("paper", samples=8000, batch_size=64, proxy="train-5ep", proxy_budget="paper",
                          netadapt_budget="paper", map_networks=0),
}

DEFAULTS: dict[str, Any] = {
    "space": "auto", "device": "pixel1", "proxy": None, "budget": "default", "seed": 0,
    "algorithm": "controller", "reward": "tunas", "reward_w": None, "samples": None,
    "dataset": "fashion-mnist", "data": None, "address": None, "cpus": None, "trial_retries": 1,
}
CONFIG_KEYS = ("target_ms", *DEFAULTS)


# ---- configuration --------------------------------------------------------------------------

Origins = dict[str, tuple[str | None, str]]  # key -> (file, field) an error about its value names


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def flag_origins() -> Origins:
    return {key: (None, flag(key)) for key in CONFIG_KEYS}


def file_origins(source: str) -> Origins:
    return {key: (source, key) for key in CONFIG_KEYS}


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A run config (--config, or a run's saved config.yaml): a mapping of known settings."""
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise UserError("expected a mapping of settings", source=str(path))
    for key in data:
        if key not in CONFIG_KEYS:
            raise UserError(f"unknown key (allowed: {', '.join(CONFIG_KEYS)})", source=str(path), field=str(key))
    return data


def resolve_config(args, file_config: dict[str, Any], source: str | None) -> tuple[dict[str, Any], Origins]:
    """defaults <- config file <- flags given on the command line."""
    config, origins = dict(DEFAULTS), flag_origins()
    for key, value in file_config.items():
        config[key], origins[key] = value, (source, key)
    for key in CONFIG_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            config[key], origins[key] = value, (None, flag(key))
    return validate_config(config, origins), origins


MAX_SAMPLES = 1_000_000


def validate_config(config: dict[str, Any], origins: Origins | str) -> dict[str, Any]:
    if isinstance(origins, str):
        origins = file_origins(origins)

    def fail(field, message):
        return UserError(message, source=origins[field][0], field=origins[field][1])

    t = config.get("target_ms")
    if t is None:
        raise fail("target_ms", "missing: give --target-ms (or target_ms in the --config file)")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise fail("target_ms", f"must be a finite number of milliseconds > 0, got {t!r} (--target-ms)")
    if t > 1e5:
        raise fail("target_ms", f"{t:g} ms is absurd for one inference (at most 100000)")
    if config["budget"] not in BUDGETS:
        raise fail("budget", f"must be one of {', '.join(BUDGETS)}, got {config['budget']!r}")
    if config["algorithm"] not in ("controller", "random", "evolution"):
        raise fail("algorithm", f"must be controller, random or evolution, got {config['algorithm']!r}")
    if config["reward"] not in ("mnasnet", "hard", "tunas"):
        raise fail("reward", f"must be mnasnet, hard or tunas, got {config['reward']!r}")
    w = config["reward_w"]
    if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not -2 <= w <= 0):
        raise fail("reward_w", f"must be a number in [-2, 0], got {w!r}")
    for key in ("seed",):
        if isinstance(config[key], bool) or not isinstance(config[key], int) or config[key] < 0:
            raise fail(key, f"must be an integer >= 0, got {config[key]!r}")
    r = config["trial_retries"]
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 100:
        raise fail("trial_retries", f"must be an integer in 0..100, got {r!r}")
    for key in ("samples", "cpus"):
        v = config[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise fail(key, f"must be an integer >= 1, got {v!r}")
    if config["samples"] is not None and config["samples"] > MAX_SAMPLES:
        raise fail("samples", f"{config['samples']} is more than a search can use (at most {MAX_SAMPLES})")
    from nas.runtime.session import available_cpus

    available = available_cpus()
    if config["cpus"] is not None and config["address"] is None and config["cpus"] > available:
        raise fail("cpus", f"this machine lets the run use {available} CPU(s), got {config['cpus']} "
                           f"(a cluster takes --address)")
    for key in ("space", "device", "dataset"):
        if not isinstance(config[key], str) or not config[key].strip():
            raise fail(key, f"must be a non-empty string, got {config[key]!r}")
    for key in ("proxy", "data", "address"):
        if config[key] is not None and (not isinstance(config[key], str) or not config[key].strip()):
            raise fail(key, f"must be a non-empty string, got {config[key]!r}")
    config["target_ms"] = float(t)
    return config


def pick_space(config: dict[str, Any], device) -> tuple[Any, str]:
    """`auto`: the family whose seed network's latency on this device is nearest the target."""
    from nas.core.space import load_space

    if config["space"] != "auto":
        return load_space(config["space"]), "given"
    ratios = {}
    for family, name in FAMILY_SPACES.items():
        space = load_space(name)
        ms = device.predict(space.seed_spec()).ms
        ratios[family] = (abs(math.log(config["target_ms"] / ms)), ms, space)
    family = min(ratios, key=lambda f: ratios[f][0])
    seeds = ", ".join(f"{f} seed {v[1]:.1f} ms" for f, v in ratios.items())
    return ratios[family][2], f"auto: {seeds}"


# ---- run directory --------------------------------------------------------------------------

class Pipeline:
    def __init__(self, run_dir: Path, config: dict[str, Any]):
        self.dir = run_dir
        self.config = config
        self.state_path = run_dir / "pipeline.json"
        self.state: dict[str, Any] = json.loads(self.state_path.read_text()) if self.state_path.exists() else {
            "done": {}, "wall_s": 0.0}
        self.started = time.perf_counter()

    def done(self, stage: str) -> dict | None:
        return self.state["done"].get(stage)

    def finish(self, stage: str, result: dict[str, Any], seconds: float) -> dict[str, Any]:
        self.state["done"][stage] = {**result, "seconds": round(seconds, 2)}
        self.state["wall_s"] = round(self.elapsed(), 2)
        atomic_write_text(self.state_path, json.dumps(self.state, indent=1, sort_keys=True))
        return self.state["done"][stage]

    def elapsed(self) -> float:
        before = self.state.get("wall_s_before_resume", 0.0)
        return before + time.perf_counter() - self.started


@dataclass
class Prepared:
    """What a run is made of, resolved (and so checked) before its directory is written."""

    device: Any
    space: Any
    why: str
    data: Any
    proxy: Any
    proxy_name: str


def prepare(config: dict[str, Any], origins: Origins) -> Prepared:
    """Resolve device, space, data and proxy; a bad one is a one-line error naming where it came from."""
    from nas.latency.devices import get_device
    from nas.latency.ops import space_ops
    from nas.accuracy.config import DataConfig
    from nas.accuracy.datasets import open_source
    from nas.accuracy.proxy import make_proxy

    def at(key: str, make):
        try:
            return make()
        except UserError as err:
            raise err.located(*origins[key]) from None

    budget = BUDGETS[config["budget"]]
    device = at("device", lambda: get_device(config["device"]))
    space, why = at("space", lambda: pick_space(config, device))
    if getattr(device, "measure_missing", True) is None:  # a table from elsewhere must cover the space
        at("device", lambda: device.ensure_ops(space_ops(space)))
    at("device", lambda: device.predict(space.seed_spec()))  # e.g. a table without its calibration
    data = at("dataset", lambda: DataConfig(dataset=config["dataset"], path=config["data"]))
    at("data", lambda: open_source(data.dataset, data.path))
    proxy_name = config["proxy"] or budget.proxy
    proxy = at("proxy", lambda: make_proxy(proxy_name, budget.proxy_budget, data=data, seed=config["seed"]))
    return Prepared(device, space, why, data, proxy, proxy_name)


def limit_local_cpus(config: dict[str, Any]) -> None:
    """--cpus N: the whole local run (torch, ONNX Runtime, a local Ray and its workers) on N CPUs."""
    if config["cpus"] is not None and config["address"] is None:
        from nas.runtime.session import limit_cpus

        limit_cpus(config["cpus"])


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_pipeline(config: dict[str, Any], run_dir: Path, resume: bool, prepared: Prepared) -> dict[str, Any]:
    from nas.search.reward import RewardConfig
    from nas.search.loop import Evaluator, SearchRun
    from nas.search.algorithms import make_algorithm

    pipe = Pipeline(run_dir, config)
    if resume:
        pipe.state["wall_s_before_resume"] = pipe.state.get("wall_s", 0.0)
    budget = BUDGETS[config["budget"]]
    device, space, why, data = prepared.device, prepared.space, prepared.why, prepared.data
    proxy, proxy_name = prepared.proxy, prepared.proxy_name
    samples = config["samples"] or budget.samples
    w = config["reward_w"] if config["reward_w"] is not None else space.reward_w
    target = config["target_ms"]
    reward = {"mnasnet": lambda: RewardConfig.soft(target, w), "hard": lambda: RewardConfig.hard(target),
              "tunas": lambda: RewardConfig.tunas(target)}[config["reward"]]()
    say(f"[nas] space {space.name} ({why}); device {config['device']}; proxy {proxy_name}; "
        f"{samples} samples; reward {config['reward']} w={w:g}; run {run_dir}")

    # 1. search ----------------------------------------------------------------------------
    if not pipe.done("search"):
        t0 = time.perf_counter()
        to_accuracy, score_map = None, None
        in_process = proxy.cheap or ">" in proxy_name  # zero-cost scores and cascades run here
        if proxy.cheap:
            score_map = pipe.state.get("score_map") or fit_score_map(space, proxy, proxy_name, budget, data,
                                                                     config["seed"])
            pipe.state["score_map"] = score_map
            a, b = score_map["slope"], score_map["intercept"]
            to_accuracy = lambda r: float(np.clip(a * r["score"] + b, 0.01, 1.0))  # noqa: E731
        evaluator = Evaluator(device, proxy, reward, to_accuracy)
        algorithm = make_algorithm(config["algorithm"], space, seed=config["seed"],
                                   **({"batch_size": budget.batch_size} if config["algorithm"] == "controller" else {}))
        from tqdm import tqdm
        with tqdm(total=samples, desc="search", unit="arch", leave=False, mininterval=1) as bar:
            run = SearchRun(run_dir / "search", space, algorithm, evaluator, samples, resume=resume,
                            progress=bar.update)
            bar.update(run.done)
            if in_process:
                records = run.run_inprocess(batch_size=budget.batch_size)
            else:
                records = run.run_on_ray(proxy.config, address=config["address"], cpus=config["cpus"],
                                         max_failures=config["trial_retries"])
        pipe.finish("search", {"samples": len(records), "score_map": score_map}, time.perf_counter() - t0)
    from nas.runtime.jsonl import read_jsonl
    records = read_jsonl(run_dir / "search" / "samples.jsonl")

    # 2. select: the best network that NetAdapt can bring down to the target -------------------
    if not pipe.done("select"):
        t0 = time.perf_counter()
        best, note = select_seed(records, space, device, target)
        save_spec(best, run_dir / "best.yaml")
        pipe.finish("select", {"note": note, "latency_ms": device.predict(best).ms}, time.perf_counter() - t0)
    best = load_spec(run_dir / "best.yaml")

    # 3. NetAdapt ---------------------------------------------------------------------------
    if not pipe.done("netadapt"):
        t0 = time.perf_counter()
        from nas.netadapt.run import run_netadapt
        result = run_netadapt(best, target_ms=target, device=device, budget=budget.netadapt_budget, data=data,
                              out_dir=run_dir / "netadapt", resume=resume, seed=config["seed"],
                              trial_retries=config["trial_retries"], address=config["address"],
                              **dict(budget.netadapt))
        final = result["spec"]
        save_spec(replace(final, name=f"{space.family}-{target:g}ms-{config['device']}"), run_dir / "final.yaml")
        pipe.finish("netadapt", {"iterations": result["iterations"], "accuracy": result["accuracy"],
                                 "latency_ms": result["latency_ms"], "weights": result.get("weights_path"),
                                 "note": result.get("message", "")}, time.perf_counter() - t0)
    final = load_spec(run_dir / "final.yaml")

    # 4. export and measure ------------------------------------------------------------------
    if not pipe.done("export"):
        t0 = time.perf_counter()
        from nas.export.onnx import export_spec
        exported = export_spec(final, run_dir / "final.onnx", verify=True, time_it=True)
        if not exported["verified"]:
            raise RuntimeError(f"ONNX Runtime disagrees with torch by {exported['max_abs_diff']:.2e}")
        pipe.finish("export", {k: exported[k] for k in ("max_abs_diff", "latency_ms", "latency_p10_ms",
                                                        "latency_p90_ms", "params", "macs")},
                    time.perf_counter() - t0)

    # 5. report -----------------------------------------------------------------------------
    exp = pipe.done("export")
    pred = device.predict(final)
    summary = {
        "run": run_dir.name, "target_ms": target, "device": config["device"], "space": space.name,
        "proxy": proxy_name, "budget": budget.name, "seed": config["seed"],
        "final_spec": str(run_dir / "final.yaml"), "onnx": str(run_dir / "final.onnx"),
        "predicted_ms": round(pred.ms, 4), "predicted_p10_ms": round(pred.p10, 4),
        "predicted_p90_ms": round(pred.p90, 4), "measured_host_ms": exp["latency_ms"],
        "max_abs_diff": exp["max_abs_diff"], "netadapt_accuracy": pipe.done("netadapt")["accuracy"],
        "params": exp["params"], "macs": exp["macs"], "samples": len(records),
        "netadapt_iterations": pipe.done("netadapt")["iterations"],
        "block_strings": final.block_strings(), "arch": final.to_string(),
    }
    if not pipe.done("compare"):
        t0 = time.perf_counter()
        rows = comparison_rows(final, space.family, device, budget, data, config["seed"])
        pipe.finish("compare", {"rows": rows}, time.perf_counter() - t0)
    rows = pipe.done("compare")["rows"]
    summary["proxy_accuracy"] = rows[0]["accuracy"]
    references = rows[1:]
    if not pipe.done("report"):
        t0 = time.perf_counter()
        history = [r for r in read_jsonl(run_dir / "netadapt" / "netadapt.jsonl") if r.get("type") == "iteration"]
        points, title = latency_points(config["device"], device, final, exp["latency_ms"], pred.ms)
        summary["stages"] = {k: v for k, v in pipe.state["done"].items()}
        summary["wall_s"] = round(pipe.elapsed(), 1)
        from nas.export.report import write_report
        write_report(run_dir, summary, records, references, history, points, title)
        pipe.finish("report", {}, time.perf_counter() - t0)
    summary["wall_s"] = round(pipe.elapsed(), 1)
    summary.pop("stages", None)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1, sort_keys=True))
    return summary


# Spearman rho of each zero-cost score against 5-epoch reference training, from the N=20 audit
# (python -m nas.proxies audit --space mobilenetv3_small --samples 20 --budget default).
AUDITED_RHO = {"zen": 0.175, "synflow": 0.095, "naswot": 0.181, "grad_norm": -0.075, "params": 0.142, "macs": 0.344}
UNAUDITED_RHO = 0.5
SCORE_SAMPLES = 64


def fit_score_map(space, proxy, proxy_name: str, budget: SearchBudget, data, seed: int) -> dict[str, float]:
    """Map a zero-cost score onto proxy-task accuracy, so that the reward's accuracy term has the
    scale of a real accuracy: accuracy = mean + rho * sd_acc * (score - mean_score) / sd_score.

    A least-squares fit on the few networks a budget can train is mostly noise (one-epoch
    accuracies of 8 Large-space networks spread 0.55-0.74 with no relation to Zen-score, slope
    below 0). So the slope is the regression slope implied by the audited rank correlation rho:
    the trained networks give the accuracy scale (mean, sd), many cheap scores the score's scale.
    """
    from nas.accuracy.proxy import make_proxy

    trainer = make_proxy("train", budget.proxy_budget, data=data, seed=seed)
    rng = np.random.default_rng(seed + 7919)
    trained = [space.seed_spec()] + [space.sample_spec(rng) for _ in range(max(2, budget.map_networks) - 1)]
    accs = [float(r["accuracy"]) for r in map(trainer.evaluate, trained) if not r.get("failed")]
    scores = [float(r["score"]) for r in (proxy.evaluate(space.sample_spec(rng)) for _ in range(SCORE_SAMPLES))
              if not r.get("failed") and r.get("score") is not None and math.isfinite(r["score"])]
    rho = AUDITED_RHO.get(proxy_name, UNAUDITED_RHO)
    mean_acc = float(np.mean(accs)) if accs else 0.5
    sd_acc = float(np.std(accs)) if len(accs) > 1 else 0.0
    sd_score = float(np.std(scores)) if len(scores) > 1 else 0.0
    slope = max(0.0, rho) * sd_acc / sd_score if sd_score > 0 else 0.0  # no evidence, no reward
    intercept = mean_acc - slope * (float(np.mean(scores)) if scores else 0.0)
    return {"slope": slope, "intercept": intercept, "rho": rho, "accuracy_mean": mean_acc, "accuracy_sd": sd_acc,
            "score_mean": float(np.mean(scores)) if scores else None, "score_sd": sd_score,
            "trained": len(accs), "scored": len(scores), "accuracies": accs}


def select_seed(records: list[dict], space, device, target: float) -> tuple[ArchSpec, str]:
    """Best reward among samples at or above the target (NetAdapt only shrinks); if the search
    found nothing that slow, the best sample widened until it reaches the target."""
    from nas.core.spec import spec_from_string

    ok = [r for r in records if not r.get("failed")]
    if not ok:
        raise UserError("every sampled network failed its evaluation; nothing to adapt", source="search")
    for ceiling in (1.15, 1.3):  # close above the target: few NetAdapt iterations
        above = [r for r in ok if target <= r["latency_ms"] <= ceiling * target]
        if above:
            r = max(above, key=lambda r: r["reward"])
            return spec_from_string(r["arch"], name="best"), f"best reward within [T, {ceiling}T]: sample {r['i']}"
    r = max(ok, key=lambda r: r["reward"])
    spec = spec_from_string(r["arch"], name="best")
    if device.predict(spec).ms >= target:
        return spec, f"best reward: sample {r['i']} (above 1.3T)"
    lo, hi = 1.0, 1.0
    while device.predict(scale_width(spec, hi)).ms < target and hi < 4:
        lo, hi = hi, hi * 1.25
    if device.predict(scale_width(spec, hi)).ms < target:
        return spec, f"best reward: sample {r['i']}; even 4x wider it stays under the target"
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if device.predict(scale_width(spec, mid)).ms < target else (lo, mid)
    return scale_width(spec, hi, name="best"), f"best reward: sample {r['i']}, widened x{hi:.3f} to reach the target"


def comparison_rows(final: ArchSpec, family: str, device, budget: SearchBudget, data, seed: int) -> list[dict]:
    """The final network and the published MobileNetV3s on the same device, each trained from
    scratch with the same proxy recipe, so that their accuracies compare."""
    from nas.core.model import count_macs, count_params
    from nas.accuracy.proxy import make_proxy

    trainer = make_proxy("train", budget.proxy_budget, data=data, seed=seed)
    rows = []
    specs = [("final", final)] + [(name, load_spec(REFERENCE_DIR / f"{name}.yaml"))
                                  for name in FAMILY_REFERENCES.values()]
    for name, spec in specs:
        result = trainer.evaluate(spec)
        rows.append({"name": name, "latency_ms": round(device.predict(spec).ms, 3),
                     "accuracy": None if result.get("failed") else result.get("accuracy"),
                     "params": count_params(spec), "macs": count_macs(spec)})
    return rows


def latency_points(device_name: str, device, final: ArchSpec, measured: float, predicted: float):
    """Predicted vs measured: on the host, the final network; on a calibrated phone, its calibration set."""
    if device_name == "host":
        return [{"name": "final", "predicted_ms": predicted, "measured_ms": measured}], "host: predicted vs measured"
    info = getattr(device, "info", None) or {}
    points = []
    for row in info.get("networks", []) if isinstance(info, dict) else []:
        if {"fitted_ms", "published_ms"} <= set(row):
            points.append({"name": row.get("network", row.get("name", "")), "predicted_ms": row["fitted_ms"],
                           "measured_ms": row["published_ms"]})
    return points, f"{device_name}: model vs published end-to-end latency"


# ---- command line ---------------------------------------------------------------------------

def latest_run() -> Path:
    runs = sorted((p for p in RUNS_DIR.glob("*") if (p / "config.yaml").exists()), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UserError(f"no run to resume under {RUNS_DIR}", field="--resume")
    return runs[-1]


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m nas.search", description=__doc__.strip().splitlines()[0])
    p.add_argument("--target-ms", dest="target_ms", type=positive_float, help="target latency on the device (ms)")
    p.add_argument("--space", help="auto (default), mobilenetv3_large, mobilenetv3_small, mnasnet, or a YAML path")
    p.add_argument("--device", help="pixel1 (default), host, or a table/model under latency_tables/")
    p.add_argument("--proxy", help="accuracy proxy (default: the budget's; see python -m nas.proxies)")
    p.add_argument("--budget", choices=list(BUDGETS), help="smoke (<2 min), default (<15 min), paper (cluster)")
    p.add_argument("--algorithm", choices=["controller", "random", "evolution"])
    p.add_argument("--reward", choices=["mnasnet", "hard", "tunas"])
    p.add_argument("--samples", type=positive_int, help="override the budget's number of samples")
    p.add_argument("--seed", type=int)
    p.add_argument("--data", help="data set folder (default: Fashion-MNIST from dataset-fashion-mnist)")
    p.add_argument("--dataset", help="fashion-mnist (default), cifar10, imagefolder")
    p.add_argument("--config", help="run config YAML (experiments/*.yaml); flags override it")
    p.add_argument("--out", help="run directory (default experiments/runs/<family>-<target>ms-<device>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (default: the latest run)")
    p.add_argument("--address", help="Ray cluster address (ray start --head); trials run there")
    p.add_argument("--cpus", type=positive_int, help="CPUs a local run may use (Ray trials, torch threads)")
    p.add_argument("--trial-retries", dest="trial_retries", type=non_negative_int,
                   help="reruns of a Ray trial that raised or whose worker died, before it counts as failed "
                        "(default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = p.parse_args(argv)
    if args.seed is not None and args.seed < 0:
        p.error(f"argument --seed: must be >= 0, got {args.seed}")

    if args.resume:
        run_dir = Path(args.out) if args.out else latest_run()
        if not (run_dir / "config.yaml").exists():
            raise UserError("no config.yaml here: not a run directory to resume", source=str(run_dir))
        origins = file_origins(str(run_dir / "config.yaml"))
        config = validate_config({**DEFAULTS, **read_config_file(run_dir / "config.yaml")}, origins)
        for key in CONFIG_KEYS:
            given = getattr(args, key, None)
            if given is not None and key not in ("address", "cpus", "trial_retries") and given != config[key]:
                raise UserError(f"{flag(key)} {given} differs from this run's saved {config[key]!r}; "
                                f"drop the flag to resume, or start a new run", source=str(run_dir / "config.yaml"))
        for key in ("address", "cpus", "trial_retries"):
            if getattr(args, key) is not None:
                config[key], origins[key] = getattr(args, key), (None, flag(key))
        config = validate_config(config, origins)
        limit_local_cpus(config)
        prepared = prepare(config, origins)
    else:
        file_config = read_config_file(args.config) if args.config else {}
        config, origins = resolve_config(args, file_config, args.config)
        run_dir = Path(args.out) if args.out else RUNS_DIR / time.strftime(
            f"{Path(str(config['space'])).stem}-{config['target_ms']:g}ms-{Path(config['device']).stem}-%Y%m%d-%H%M%S")
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError("exists and is not a directory", source=str(run_dir), field="--out")
        if (run_dir / "config.yaml").exists():
            raise UserError("already holds a run: add --resume to continue it, or choose another --out",
                            source=str(run_dir))
        limit_local_cpus(config)
        prepared = prepare(config, origins)  # nothing is written before the inputs check out
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the run directory: {err.strerror or err}", source=str(run_dir),
                            field="--out") from None
        import yaml
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=True))

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    set_resume_hint(resume_command("python -m nas.search", ["--resume", "--out", str(run_dir)]))
    summary = run_pipeline(config, run_dir, resume=args.resume, prepared=prepared)
    keys = ("final_spec", "onnx", "predicted_ms", "measured_host_ms", "proxy_accuracy", "samples", "wall_s",
            "target_ms", "device", "space", "netadapt_iterations", "params", "macs", "max_abs_diff")
    result = {k: summary[k] for k in keys} | {"report": str(run_dir / "report.md"), "run_dir": str(run_dir)}
    emit(result, args.json, _human)
    return 0


def _human(r: dict) -> str:
    return "\n".join([
        f"final network for {r['target_ms']:g} ms on {r['device']} ({r['space']}):",
        f"  predicted {r['predicted_ms']:.2f} ms ({100 * (r['predicted_ms'] / r['target_ms'] - 1):+.1f}% from target), "
        f"measured on this host {r['measured_host_ms']:.3f} ms (ONNX Runtime, 1 thread)",
        f"  proxy accuracy {r['proxy_accuracy']:.4f}; {r['params']:,} params, {r['macs'] / 1e6:.1f}M MACs; "
        f"{r['samples']} samples, {r['netadapt_iterations']} NetAdapt iterations, {r['wall_s']:.0f} s",
        f"  spec {r['final_spec']}", f"  onnx {r['onnx']}", f"  report {r['report']}",
    ])


if __name__ == "__main__":
    run_main(main)
