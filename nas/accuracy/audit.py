"""Fidelity audit: how well does each cheap proxy rank architectures, and at what cost?

Samples N architectures from a search space, trains each as a reference (the budget's long
recipe), evaluates every proxy on each, and reports Kendall tau and Spearman rho of every proxy
against the reference, with the seconds each costs. Every result is appended to `results.jsonl`
in the output directory as soon as it exists, keyed by the architecture's content hash and the
proxy's fingerprint, so an interrupted audit resumes where it stopped.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats
from tqdm import tqdm

from nas.runtime.errors import UserError
from nas.runtime.jsonl import JsonlWriter, jsonable, read_jsonl
from nas.accuracy.cascade import steady_state
from nas.accuracy.config import DataConfig, ProxyConfig
from nas.budgets import AccuracyBudget
from nas.accuracy.proxy import TrainingProxy, audit_proxies
from nas.runtime.tune import TRIAL_RETRIES
from nas.core.spec import ArchSpec


# ---- sampling -------------------------------------------------------------------------------

def sample_specs(space_name: str, samples: int, seed: int) -> list[ArchSpec]:
    """`samples` distinct architectures of a search space, drawn with `seed`."""
    from nas.core.space import load_space

    space = load_space(space_name)
    rng = np.random.default_rng(seed)
    specs: dict[str, ArchSpec] = {}
    for _ in range(100 * samples):
        if len(specs) == samples:
            break
        spec = space.sample_spec(rng)
        specs.setdefault(spec.content_hash(), spec)
    if len(specs) < samples:
        raise UserError(f"the space holds fewer than {samples} distinct architectures", field="--samples")
    return list(specs.values())


# ---- resumable results ----------------------------------------------------------------------

class ResultCache:
    """The results log (nas.runtime.jsonl: a torn last line, from an interrupted write, is dropped)."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._writer: JsonlWriter | None = None
        for e in read_jsonl(path):
            try:
                self.entries[(e["arch_hash"], e["proxy"], e["fingerprint"])] = e["result"]
            except (KeyError, TypeError):
                continue  # not a result of ours: computed again

    def get(self, arch_hash: str, proxy: str, fingerprint: str) -> dict[str, Any] | None:
        return self.entries.get((arch_hash, proxy, fingerprint))

    def put(self, arch_hash: str, proxy: str, fingerprint: str, result: dict[str, Any]) -> None:
        self.entries[(arch_hash, proxy, fingerprint)] = result
        if self._writer is None:  # opened once: it reads the log whole to cut off a torn line
            self._writer = JsonlWriter(self.path)
        self._writer.write({"arch_hash": arch_hash, "proxy": proxy, "fingerprint": fingerprint, "result": result})

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# ---- the audit ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditConfig:
    space: str
    samples: int
    budget: AccuracyBudget
    data: DataConfig
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    address: str | None = None  # a Ray cluster for the reference trainings
    ray_cpus: int | None = None  # a local Ray with this many CPUs for them
    trial_retries: int = TRIAL_RETRIES  # reruns of a reference trial that raised or lost its worker


def run_audit(config: AuditConfig, out_dir: Path, progress: bool = True,
              specs: list | None = None) -> dict[str, Any]:
    """Evaluate (or reload) every reference and proxy result, then compute the rank correlations."""
    start = time.perf_counter()
    if specs is None:  # the command samples first, to fail on a bad space before it writes
        specs = sample_specs(config.space, config.samples, config.seed)
    cache = ResultCache(out_dir / "results.jsonl")
    reference = TrainingProxy("reference", ProxyConfig(config.data, config.budget.reference, config.seed,
                                                       config.device, config.threads))
    proxies = audit_proxies(config.budget, config.data, config.seed, config.device, config.threads)
    try:
        if config.address is not None or config.ray_cpus is not None:
            _references_on_ray(specs, reference, cache, config, out_dir)
        todo = [(spec, p) for spec in specs for p in (reference, *proxies)
                if cache.get(spec.content_hash(), p.name, p.fingerprint()) is None]
        with tqdm(total=len(todo), desc="audit", unit="eval", disable=not progress or None, leave=False) as bar:
            for spec, proxy in todo:
                bar.set_postfix_str(f"{proxy.name} {spec.content_hash()[:8]}")
                cache.put(spec.content_hash(), proxy.name, proxy.fingerprint(), jsonable(proxy.evaluate(spec)))
                bar.update()
    finally:
        cache.close()

    rows = [{"arch_hash": s.content_hash(), "arch": s.to_string(),
             **{p.name: cache.get(s.content_hash(), p.name, p.fingerprint()) for p in (reference, *proxies)}}
            for s in specs]
    summary = summarise(rows, [p.name for p in proxies], [p.cheap for p in proxies])
    # What the results cost to compute, whichever run computed them (a resumed run reloads them).
    compute = sum(r[p.name]["seconds"] or 0.0 for r in rows for p in (reference, *proxies) if r[p.name])
    summary.update(space=config.space, samples=len(specs), budget=config.budget.name, seed=config.seed,
                   data=asdict(config.data), reference_recipe=asdict(config.budget.reference),
                   proxy_recipe=asdict(config.budget.proxy), zero_cost_batch=config.budget.zero_cost_batch,
                   wall_s=round(time.perf_counter() - start, 2), compute_s=round(compute, 2), out=str(out_dir))
    return {"summary": summary, "rows": rows}


def _references_on_ray(specs: Sequence[ArchSpec], reference: TrainingProxy, cache: ResultCache,
                       config: AuditConfig, out_dir: Path) -> None:
    from nas.accuracy.tune import evaluate_specs

    missing = [s for s in specs if cache.get(s.content_hash(), "reference", reference.fingerprint()) is None]
    if not missing:
        return
    results = evaluate_specs(missing, reference.config, address=config.address, cpus=config.ray_cpus,
                             max_failures=config.trial_retries,
                             run_dir=out_dir / "tune", name="reference")
    for spec, result in zip(missing, results):
        result["proxy"] = "reference"
        cache.put(spec.content_hash(), "reference", reference.fingerprint(), jsonable(result))


# ---- statistics -----------------------------------------------------------------------------

BASELINES = ("params", "macs")
CASCADE_KEEP = 0.5  # fraction of candidates a cascade trains

def tau_standard_error(n: int) -> float:
    """Standard deviation of Kendall's tau between unrelated rankings of n items."""
    return math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))) if n > 1 else math.inf


def rank_values(results: Sequence[dict[str, Any]]) -> list[float]:
    """Scores to rank by; a failed or missing score ranks below every other."""
    values = [r.get("score") if r and not r.get("failed") else None for r in results]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    floor = (min(finite) if finite else 0.0) - 1.0
    return [v if v is not None and math.isfinite(v) else floor for v in values]


def correlation(reference: Sequence[float], scores: Sequence[float]) -> tuple[float | None, float | None]:
    """(Kendall tau-b, Spearman rho), None where undefined (fewer than 2 items or a constant side)."""
    if len(reference) < 2 or len(set(reference)) < 2 or len(set(scores)) < 2:
        return None, None
    tau = stats.kendalltau(reference, scores).statistic
    rho = stats.spearmanr(reference, scores).statistic
    return (None if math.isnan(tau) else float(tau)), (None if math.isnan(rho) else float(rho))


def summarise(rows: list[dict[str, Any]], names: Sequence[str], cheap: Sequence[bool],
              keep: float = CASCADE_KEEP) -> dict[str, Any]:
    """Correlations and costs of every proxy, and of each zero-cost>training cascade they allow."""
    ref_results = [r["reference"] for r in rows]
    ref = rank_values(ref_results)
    table = []
    for name, is_cheap in zip(names, cheap):
        results = [r[name] for r in rows]
        tau, rho = correlation(ref, rank_values(results))
        seconds = [r["seconds"] for r in results if r and r.get("seconds") is not None]
        table.append({"proxy": name, "kind": "zero-cost" if is_cheap else "training", "kendall_tau": tau,
                      "spearman": rho, "seconds": statistics.median(seconds) if seconds else None,
                      "failed": sum(bool(r and r.get("failed")) for r in results)})
    trainings = [n for n, c in zip(names, cheap) if not c]
    for first in [n for n, c in zip(names, cheap) if c and n not in BASELINES] if trainings else []:
        scores, seconds = steady_state([r[first] for r in rows], [r[trainings[0]] for r in rows], keep)
        tau, rho = correlation(ref, scores)
        table.append({"proxy": f"{first}>{trainings[0]}", "kind": "cascade", "kendall_tau": tau, "spearman": rho,
                      "seconds": seconds, "failed": 0})
    ref_seconds = [r["seconds"] for r in ref_results if r and r.get("seconds") is not None]
    accuracies = [r["accuracy"] for r in ref_results if r and r.get("accuracy") is not None]
    recommended = recommend(table, len(rows))
    # The MnasNet reward multiplies an accuracy: only training proxies and cascades give one.
    for_reward = recommend([t for t in table if t["kind"] in ("training", "cascade")], len(rows))
    return {
        "kendall_tau": {t["proxy"]: t["kendall_tau"] for t in table},
        "spearman": {t["proxy"]: t["spearman"] for t in table},
        "seconds": {t["proxy"]: t["seconds"] for t in table},
        "table": table,
        "tau_standard_error": tau_standard_error(len(rows)) if len(rows) > 1 else None,
        "reference": {"seconds": statistics.median(ref_seconds) if ref_seconds else None,
                      "accuracy_min": min(accuracies, default=None), "accuracy_max": max(accuracies, default=None),
                      "accuracy_mean": statistics.fmean(accuracies) if accuracies else None,
                      "failed": sum(bool(r and r.get("failed")) for r in ref_results)},
        "recommended": recommended,
        "recommended_for_reward": for_reward,
    }


def recommend(table: Sequence[dict[str, Any]], n: int) -> str | None:
    """The cheapest proxy whose tau is within one standard error of the best tau (the one-SE rule).

    Differences in tau smaller than its sampling noise at this N say nothing, so among the
    proxies that are indistinguishable from the best, the fastest one wins. The size baselines
    are not candidates: in a latency-constrained search, size is nearly latency, and a proxy that
    only measures size leaves the reward nothing but latency to trade against.
    """
    scored = [t for t in table if t["kendall_tau"] is not None and t["seconds"] is not None
              and t["proxy"] not in BASELINES]
    if not scored:
        return None
    best = max(t["kendall_tau"] for t in scored)
    if best <= 0:
        return None
    close = [t for t in scored if t["kendall_tau"] >= best - tau_standard_error(n)]
    return min(close, key=lambda t: t["seconds"])["proxy"]
