"""Fidelity audit: how well does each cheap proxy rank architectures, and at what cost?

Samples N architectures from a search space, trains each as a reference (the budget's long
recipe, at R seeds: the reference is their mean, and the seed-to-seed tau is the ceiling a proxy
can reach), evaluates every proxy on each, and reports Kendall tau and Spearman rho of every proxy
against the reference, with the seconds each costs. A second reference needs no training: the
zoo's networks with published ImageNet top-1 (`nas.audit.published`), ranked by every
zero-cost proxy and the budget's training proxy. Every result is appended to `results.jsonl` in
the output directory as soon as it exists, keyed by the architecture's content hash, the proxy's
name and its fingerprint (which holds the seed), so an interrupted audit resumes where it stopped.
"""
from __future__ import annotations

import itertools
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from nas.runtime.errors import UserError
from nas.runtime.jsonl import JsonlWriter, jsonable, read_jsonl
from nas.accuracy.cascade import steady_state
from nas.accuracy.proxy_config import DataConfig, ProxyConfig
from nas.budgets import AccuracyBudget
from nas.accuracy.proxy import Proxy, TrainingProxy, audit_proxies, make_proxy
from nas.audit.population import POPULATIONS
from nas.audit.published import LATENCY_DEVICE, load_published, predicted_latency_ms
from nas.audit.ranks import (correlation, partial_correlation, partial_tau_standard_error, rank_values,
                             tau_standard_error)
from nas.runtime.stats import seed_summary
from nas.runtime.ray_tune import TRIAL_RETRIES
from nas.core.spec import ArchSpec
from nas.supernet.supernet_proxy import SupernetProxy
from nas.supernet.supernet_run import CHECKPOINT, SUMMARY, SupernetRequest, train_supernet
from nas.accuracy.tune_trials import evaluate_specs


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
    reference_seeds: int = 2  # R: the reference is the mean of R trainings, seeds seed .. seed + R - 1
    population: str = "random"  # how the N architectures are drawn (POPULATIONS)
    published: bool = True  # also rank the zoo's networks against their published ImageNet top-1
    supernet: bool = True  # also train the space's supernet (the budget's recipe) and audit its scores

    def __post_init__(self):
        if isinstance(self.reference_seeds, bool) or not isinstance(self.reference_seeds, int) \
                or self.reference_seeds < 1:
            raise UserError(f"must be an integer >= 1, got {self.reference_seeds!r}", setting="reference_seeds")
        if self.population not in POPULATIONS:
            raise UserError(f"must be one of {', '.join(POPULATIONS)}, got {self.population!r}", setting="population")

    def sample(self) -> list[ArchSpec]:
        """The audit's architectures: its population's `samples` draws with its seed."""
        return POPULATIONS[self.population](self.space, self.samples, self.seed)


def reference_proxies(config: AuditConfig) -> list[TrainingProxy]:
    """The reference training at each of R seeds. All are named "reference"; the seed is in the
    fingerprint, so seed `config.seed` is the very result an audit of one seed cached."""
    return [TrainingProxy("reference", ProxyConfig(config.data, config.budget.reference, config.seed + i,
                                                   config.device, config.threads))
            for i in range(config.reference_seeds)]


def published_proxies(proxies: Sequence[Proxy], config: AuditConfig) -> list[Proxy]:
    """What ranks the published networks: every zero-cost score and the training proxy at the budget's
    length (the audit's own when one of its lengths is the budget's, so its results are shared)."""
    at_budget = [p for p in proxies if isinstance(p, TrainingProxy) and p.config.train == config.budget.proxy]
    if not at_budget:
        at_budget = [make_proxy("train", config.budget, config.data, config.seed, config.device, config.threads)]
    return [*at_budget[:1], *(p for p in proxies if p.cheap)]


def run_audit(config: AuditConfig, out_dir: Path, progress: bool = True,
              specs: list | None = None) -> dict[str, Any]:
    """Evaluate (or reload) every reference and proxy result, then compute the rank correlations."""
    start = time.perf_counter()
    if specs is None:  # the command samples first, to fail on a bad space before it writes
        specs = config.sample()
    published = load_published() if config.published else []
    published_specs = [p.spec() for p in published]
    cache = ResultCache(out_dir / "results.jsonl")
    references = reference_proxies(config)
    proxies = audit_proxies(config.budget, config.data, config.seed, config.device, config.threads)
    on_published = published_proxies(proxies, config)
    supernet = audit_supernet(config, out_dir, progress) if config.supernet else None
    if supernet is not None:
        proxies.append(supernet)
    try:
        if config.address is not None or config.ray_cpus is not None:
            _references_on_ray(specs, references, cache, config, out_dir)
        todo = [(spec, p) for spec in specs for p in (*references, *proxies)]
        todo += [(spec, p) for spec in published_specs for p in on_published]
        todo = [(spec, p) for spec, p in todo if cache.get(spec.content_hash(), p.name, p.fingerprint()) is None]
        with tqdm(total=len(todo), desc="audit", unit="eval", disable=not progress or None, leave=False) as bar:
            for spec, proxy in todo:
                bar.set_postfix_str(f"{proxy.name} {spec.content_hash()[:8]}")
                result = proxy.evaluate(spec)
                if proxy is supernet:  # its one training, spread over the architectures it scores
                    result.update(score_seconds=result["seconds"], supernet_training_s=supernet.training_s,
                                  seconds=result["seconds"] + supernet.training_s / len(specs))
                cache.put(spec.content_hash(), proxy.name, proxy.fingerprint(), jsonable(result))
                bar.update()
    finally:
        cache.close()

    def result(spec, proxy):
        return cache.get(spec.content_hash(), proxy.name, proxy.fingerprint())

    rows = []
    for s, ms in zip(specs, predicted_latency_ms(specs, LATENCY_DEVICE)):
        seeds = [result(s, p) for p in references]
        rows.append({"arch_hash": s.content_hash(), "arch": s.to_string(), "latency_ms": ms,
                     "reference": combine_seeds(seeds),
                     "reference_seeds": seeds, **{p.name: result(s, p) for p in proxies}})
    summary = summarise(rows, [p.name for p in proxies], [p.cheap for p in proxies])
    if supernet is not None:
        summary["supernet"] = {"training_s": supernet.training_s, "checkpoint": supernet.checkpoint,
                               "config": asdict(config.budget.supernet)}
    summary["reference_seeds"] = [p.config.seed for p in references]
    summary["published"] = None
    if published:
        summary["published"] = summarise_published(
            published, published_specs, {p.name: [result(s, p) for s in published_specs] for p in on_published},
            {p.name: p.cheap for p in on_published})
    # What the results cost to compute, whichever run computed them (a resumed run reloads them).
    used = [result(s, p) for s in specs for p in (*references, *proxies)]
    used += [result(s, p) for s in published_specs for p in on_published]
    compute = sum(r["seconds"] or 0.0 for r in used if r)
    summary.update(space=config.space, samples=len(specs), population=config.population,
                   budget=config.budget.name, seed=config.seed,
                   data=asdict(config.data), reference_recipe=asdict(config.budget.reference),
                   proxy_recipe=asdict(config.budget.proxy), zero_cost_batch=config.budget.zero_cost_batch,
                   wall_s=round(time.perf_counter() - start, 2), compute_s=round(compute, 2), out=str(out_dir))
    return {"summary": summary, "rows": rows}


def audit_supernet(config: AuditConfig, out_dir: Path, progress: bool):
    """The space's supernet, trained once into OUT/supernet (resumed there after an interruption) with
    the budget's supernet recipe; a SupernetProxy on it whose `training_s` is what the training took."""
    folder = out_dir / "supernet"
    summary = folder / SUMMARY
    done = json.loads(summary.read_text()) if summary.exists() else None
    if not (done and done.get("finished")):
        done = train_supernet(SupernetRequest(space=config.space, data=config.data, out=folder,
                                              config=config.budget.supernet, seed=config.seed,
                                              resume=(folder / CHECKPOINT).exists(), device=config.device,
                                              threads=config.threads, progress=progress))
        if not done["finished"]:
            raise UserError(f"the supernet's training failed: {done['reason']}", source=str(folder))
    proxy = SupernetProxy(folder / CHECKPOINT, config.device, config.threads)
    proxy.training_s = float(sum(h["seconds"] for h in done["history"]))
    return proxy


def combine_seeds(results: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The reference of one architecture: the mean top-1 over its seeds (a diverged seed counts with the
    accuracy 0 it scored; failed only when every seed failed), their spread and their summed seconds."""
    if not results or any(r is None for r in results):
        return None
    accuracies = [r.get("accuracy") or 0.0 for r in results]
    spread = seed_summary(accuracies)
    return {"proxy": "reference", "score": spread["mean"], "accuracy": spread["mean"], "accuracies": accuracies,
            "sd": spread["sd"], "n": spread["n"], "seconds": sum(r.get("seconds") or 0.0 for r in results),
            "failed": all(bool(r.get("failed")) for r in results)}


def _references_on_ray(specs: Sequence[ArchSpec], references: Sequence[TrainingProxy], cache: ResultCache,
                       config: AuditConfig, out_dir: Path) -> None:
    for i, reference in enumerate(references):
        missing = [s for s in specs if cache.get(s.content_hash(), "reference", reference.fingerprint()) is None]
        if not missing:
            continue
        # Seed 0 keeps the experiment name an audit of one seed used, so its Tune trials resume too.
        results = evaluate_specs(missing, reference.config, address=config.address, cpus=config.ray_cpus,
                                 max_failures=config.trial_retries,
                                 run_dir=out_dir / "tune", name="reference" if i == 0 else f"reference-seed{i}")
        for spec, result in zip(missing, results):
            result["proxy"] = "reference"
            cache.put(spec.content_hash(), "reference", reference.fingerprint(), jsonable(result))


# ---- statistics -----------------------------------------------------------------------------

BASELINES = ("params", "macs")
CASCADE_KEEP = 0.5  # fraction of candidates a cascade trains


def summarise(rows: list[dict[str, Any]], names: Sequence[str], cheap: Sequence[bool],
              keep: float = CASCADE_KEEP) -> dict[str, Any]:
    """Correlations and costs of every proxy, and of each zero-cost>training cascade they allow."""
    ref_results = [r["reference"] for r in rows]
    ref = rank_values(ref_results)
    latency = [r.get("latency_ms") for r in rows]
    if any(ms is None for ms in latency):  # rows of an older audit
        latency = None

    def at_equal_latency(scores):
        return None if latency is None else partial_correlation(ref, scores, latency)["partial_tau"]

    table = []
    for name, is_cheap in zip(names, cheap):
        results = [r[name] for r in rows]
        tau, rho = correlation(ref, rank_values(results))
        seconds = [r["seconds"] for r in results if r and r.get("seconds") is not None]
        kind = "supernet" if name == "supernet" else "zero-cost" if is_cheap else "training"
        table.append({"proxy": name, "kind": kind, "kendall_tau": tau,
                      "spearman": rho, "partial_tau": at_equal_latency(rank_values(results)),
                      "seconds": statistics.median(seconds) if seconds else None,
                      "failed": sum(bool(r and r.get("failed")) for r in results)})
    trainings = [n for n, c in zip(names, cheap) if not c and n != "supernet"]
    for first in [n for n, c in zip(names, cheap) if c and n not in BASELINES] if trainings else []:
        scores, seconds = steady_state([r[first] for r in rows], [r[trainings[0]] for r in rows], keep)
        tau, rho = correlation(ref, scores)
        table.append({"proxy": f"{first}>{trainings[0]}", "kind": "cascade", "kendall_tau": tau, "spearman": rho,
                      "partial_tau": at_equal_latency(scores), "seconds": seconds, "failed": 0})
    # Per training, not per architecture: a row's reference sums its seeds' seconds.
    ref_seconds = [r["seconds"] for row in rows for r in row.get("reference_seeds") or [row["reference"]]
                   if r and r.get("seconds") is not None]
    accuracies = [r["accuracy"] for r in ref_results if r and r.get("accuracy") is not None]
    recommended = recommend(table, len(rows))
    # The MnasNet reward multiplies an accuracy: only training proxies and cascades give one.
    for_reward = recommend([t for t in table if t["kind"] in ("training", "cascade", "supernet")], len(rows))
    return {
        "kendall_tau": {t["proxy"]: t["kendall_tau"] for t in table},
        "spearman": {t["proxy"]: t["spearman"] for t in table},
        "partial_tau": {t["proxy"]: t["partial_tau"] for t in table},
        "latency_kendall_tau": None if latency is None else correlation(ref, latency)[0],
        "seconds": {t["proxy"]: t["seconds"] for t in table},
        "table": table,
        "tau_standard_error": tau_standard_error(len(rows)) if len(rows) > 1 else None,
        "reference": {"seconds": statistics.median(ref_seconds) if ref_seconds else None,
                      "accuracy_min": min(accuracies, default=None), "accuracy_max": max(accuracies, default=None),
                      "accuracy_mean": statistics.fmean(accuracies) if accuracies else None,
                      "failed": sum(bool(r and r.get("failed")) for r in ref_results)},
        "recommended": recommended,
        "recommended_for_reward": for_reward,
        **reference_ceiling(rows),
    }


def reference_ceiling(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Kendall tau between the reference's seeds across the architectures (the mean over pairs of
    seeds): how well one reference training ranks like another, the most a proxy can be expected to
    reach. None with one seed (or rows without seeds) or where every pair is undefined. With the
    rows' predicted latencies, also the same at equal latency (the seeds' partial tau)."""
    seeds = [row.get("reference_seeds") or [] for row in rows]
    r = min((len(s) for s in seeds), default=0)
    latency = [row.get("latency_ms") for row in rows]
    pairs, partial = [], []
    for i, j in itertools.combinations(range(r), 2):
        a, b = rank_values([s[i] for s in seeds]), rank_values([s[j] for s in seeds])
        pairs.append(correlation(a, b)[0])
        if None not in latency:
            partial.append(partial_correlation(a, b, latency)["partial_tau"])
    defined = [t for t in pairs if t is not None]
    single = statistics.fmean(defined) if defined else None
    partial = [t for t in partial if t is not None]
    return {"reference_ceiling_tau": single, "reference_seed_pair_taus": pairs,
            "reference_mean_ceiling_tau": mean_ceiling(single, r),
            "reference_half_ceiling_tau": half_ceiling(seeds, r),
            "reference_partial_ceiling_tau": statistics.fmean(partial) if partial else None}


def half_ceiling(seeds: Sequence[Sequence[dict[str, Any]]], r: int) -> float | None:
    """Measured, not estimated: Kendall tau between the means of two disjoint halves of the seeds
    (r // 2 each; the mean over the ways to split them), the ceiling of a reference of r // 2 seeds.
    None below 4 seeds or where every split is undefined."""
    if r < 4:
        return None
    half = r // 2

    def means(idx):  # a diverged seed counts with its accuracy 0, as in combine_seeds
        return [statistics.fmean(s[i].get("accuracy") or 0.0 for i in idx) for s in seeds]

    taus = []
    for rest in itertools.combinations(range(1, r), half - 1):  # each split once: seed 0 in the first half
        first = (0, *rest)
        second = [i for i in range(r) if i not in first][:half]
        taus.append(correlation(means(first), means(second))[0])
    defined = [t for t in taus if t is not None]
    return statistics.fmean(defined) if defined else None


def mean_ceiling(single_tau: float | None, seeds: int) -> float | None:
    """The tau expected between two independent references that each average `seeds` trainings.

    Averaging cuts the training noise, not the networks' differences: with one training's
    reliability r (Greiner: r = sin(pi tau / 2) for normal scores), the mean of k has the
    Spearman-Brown reliability k r / (1 + (k - 1) r), turned back into a tau. An estimate under
    that model, not a measurement; None where one training ranks no better than chance."""
    if single_tau is None or seeds < 2 or single_tau <= 0:
        return None
    r = math.sin(math.pi * single_tau / 2)
    return tau_of_reliability(seeds * r / (1 + (seeds - 1) * r))


def tau_of_reliability(r: float) -> float:
    """Kendall tau between two measurements of normal scores whose correlation is r (Greiner)."""
    return 2 / math.pi * math.asin(r)


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


# ---- the published reference ---------------------------------------------------------------

def summarise_published(published: Sequence[Any], specs: Sequence[ArchSpec],
                        results: dict[str, list[dict[str, Any] | None]], cheap: dict[str, bool]) -> dict[str, Any]:
    """Each proxy against published ImageNet top-1 on the zoo's networks: Kendall tau, and the partial
    tau and Pearson at equal latency (`nas.audit.ranks.partial_correlation`, in ranks, on the
    pixel1 device's predicted latency), with the noise of tau at this n."""
    top1 = [p.top1 for p in published]
    latency = predicted_latency_ms(specs, LATENCY_DEVICE)
    n = len(published)
    table = []
    for name, rs in results.items():
        values = rank_values(rs)
        tau, rho = correlation(top1, values)
        partial = partial_correlation(top1, values, latency)
        seconds = [r["seconds"] for r in rs if r and r.get("seconds") is not None]
        table.append({"proxy": name, "kind": "zero-cost" if cheap[name] else "training", "kendall_tau": tau,
                      "spearman": rho, "partial_tau": partial["partial_tau"],
                      "partial_pearson": partial["partial_pearson"],
                      "seconds": statistics.median(seconds) if seconds else None,
                      "failed": sum(bool(r and r.get("failed")) for r in rs)})
    # What latency alone achieves: a proxy's plain tau is only worth what it adds to this.
    latency_tau, _ = correlation(top1, latency)
    networks = [{"network": p.network, "spec": p.spec_name, "arch_hash": s.content_hash(), "top1": p.top1,
                 "pixel1_ms": p.pixel1_ms, "predicted_ms": ms, "source": p.source,
                 "scores": {name: (rs[i] or {}).get("score") for name, rs in results.items()}}
                for i, (p, s, ms) in enumerate(zip(published, specs, latency))]
    return {"n": n, "latency_device": LATENCY_DEVICE, "latency_kendall_tau": latency_tau,
            "tau_standard_error": tau_standard_error(n), "partial_tau_standard_error": partial_tau_standard_error(n),
            "kendall_tau": {t["proxy"]: t["kendall_tau"] for t in table},
            "partial_tau": {t["proxy"]: t["partial_tau"] for t in table},
            "partial_pearson": {t["proxy"]: t["partial_pearson"] for t in table},
            "table": table, "networks": networks}
