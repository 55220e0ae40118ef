"""Every accuracy proxy judged against ImageNet: Accel-NASBench's measured top-1 as the reference.

The fidelity audit (`nas.audit.fidelity`) ranks proxies against a longer Fashion-MNIST training,
whose networks differ by less than its own seed noise. Here the reference is ImageNet top-1
measured by Accel-NASBench's authors: 3,110 networks of the MnasNet space `accel_mnasnet`, each
trained from scratch on ImageNet with their 16-epoch proxy recipe at one seed
(`nas.groundtruth.records.accel_records`). The audit draws N of them (`draw`), scores every cheap proxy
on all N and every trained one on the first M, and reports per proxy Kendall tau against that top-1,
the partial tau at equal predicted Pixel-1 latency (what a latency-constrained search needs), their
noise at the proxy's n, and the seconds per network; predicted latency alone is the baseline.

Every proxy scores the network as the project's proxies always do, on the Fashion-MNIST task the
spec is adapted to (`ZeroCostScorer`, `TrainingProxy`): nothing here sees an ImageNet image. Results
are appended to OUT/results.jsonl as they come (`nas.audit.fidelity.ResultCache`, keyed by
architecture hash, proxy name and fingerprint), so an interrupted run resumes where it stopped.

Light to import (numpy and the budget table): torch, scipy, the records and the proxies load when a run
or a summary needs them.
"""
from __future__ import annotations

import re
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nas.accuracy.proxy_config import DataConfig, ProxyConfig
from nas.runtime.registry import PROXIES
from nas.budgets import AccuracyBudget, get_budget
from nas.runtime.errors import UserError
from nas.accuracy.proxy import TrainingProxy, make_proxy
from nas.audit.published import LATENCY_DEVICE, predicted_latency_ms
from nas.groundtruth.accel import spec_of
from nas.groundtruth.records import accel_records
from nas.runtime.jsonl import jsonable

SPACE = "accel_mnasnet"
ACCEL_NETWORKS = 3110  # records shipped in nas/data/groundtruth/accel_records.jsonl.gz
REFERENCE_LABEL = "ImageNet top-1 measured by Accel-NASBench's authors (one seed)"
CHEAP = tuple(PROXIES.names(kind="zero-cost"))  # scored on all N networks
TRAINED = ("train", "final", "supernet")  # and train-<E>ep / train-<S>steps: scored on the first M
DEFAULT_PROXIES = (*CHEAP, "train")
DEFAULT_NETWORKS = 500
DEFAULT_TRAINED_NETWORKS = 60
MIN_NETWORKS = 4  # a partial correlation needs a line through at least 4 points
_LENGTH = re.compile(r"train-(\d+)(ep|steps)")

# The benchmark's own noise. Its records hold one seed per network ("Accuracy is evaluated only at a
# single seed", the benchmark's README), and no architecture is repeated among them. The authors also
# trained 117 other networks of the space at three seeds with the same proxified recipe, in an ablation
# published with their benchmark's code; two of those rows repeat another seed's row exactly (the same
# top-1 and training time), which leaves 115 networks. Computed from that ablation, once, here:
SEED_NOISE = {
    "source": "Accel-NASBench authors' ablation: 115 other networks of the space, proxified recipe, 3 seeds",
    "networks": 115,
    "seeds": 3,
    "sd_mean": 0.256,        # mean over networks of the seed-to-seed sd of top-1, percentage points
    "sd_median": 0.220,
    "sd_rms": 0.307,         # root of the mean variance: the noise sd the ceiling estimate below uses
    "spread_sd": 3.52,       # sd across those networks of their 3-seed mean top-1, points
    "seed_pair_tau": 0.928,  # Kendall tau between two seeds over the 115 networks (mean of the 3 pairs)
}
CEILING_REPEATS = 20


# ---- which networks ---------------------------------------------------------------------------

def draw(networks: int, seed: int, total: int = ACCEL_NETWORKS) -> list[int]:
    """Indices of `networks` distinct records, uniformly at random: the first `networks` of a
    permutation of all `total` records drawn with `seed`.

    Uniform, not stratified in latency: the records are the benchmark's random sample of the space,
    and a uniform draw keeps their distribution (and the search's, which samples the space), so a
    tau here estimates the tau over all records, and the standard errors, which assume a random
    sample, hold. A prefix of one permutation: the trained subset (the first M) is a random subset of
    the N, and a smaller draw with the same seed is part of a larger one, whose cached results it reuses.
    """
    if not 1 <= networks <= total:
        raise UserError(f"must be an integer in [1, {total}], got {networks!r}", setting="networks")
    return [int(i) for i in np.random.default_rng(seed).permutation(total)[:networks]]


# ---- configuration ----------------------------------------------------------------------------

def is_cheap(name: str) -> bool:
    return name in CHEAP


def check_proxy_name(name: str) -> str:
    """The name as given, or a UserError naming --proxies and what it accepts."""
    m = _LENGTH.fullmatch(name)
    if name in CHEAP or name in TRAINED or (m and int(m.group(1)) >= 1):
        return name
    raise UserError(f"unknown proxy {name!r} (one of {', '.join((*CHEAP, *TRAINED))}, train-<E>ep, "
                    "train-<S>steps)", setting="proxies")


@dataclass(frozen=True)
class ImageNetAuditConfig:
    networks: int = DEFAULT_NETWORKS
    trained_networks: int = DEFAULT_TRAINED_NETWORKS
    proxies: tuple[str, ...] = DEFAULT_PROXIES
    seed: int = 0
    budget: AccuracyBudget = field(default_factory=lambda: get_budget("default").accuracy)
    data: DataConfig = DataConfig()
    device: str = "auto"
    threads: int | None = None
    jobs: int = 1  # > 1: the trained proxies run in jobs - 1 worker processes beside the cheap ones

    def __post_init__(self):
        def integer(value, key, lo, hi):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise UserError(f"must be an integer in [{lo}, {hi}], got {value!r}", setting=key)

        integer(self.networks, "networks", MIN_NETWORKS, ACCEL_NETWORKS)
        integer(self.trained_networks, "trained_networks", 0, ACCEL_NETWORKS)
        if 0 < self.trained_networks < MIN_NETWORKS:
            raise UserError(f"must be 0 or at least {MIN_NETWORKS}, got {self.trained_networks}",
                            setting="trained_networks")
        if self.trained_networks > self.networks:
            raise UserError(f"{self.trained_networks} is more than --networks {self.networks} (the trained "
                            "networks are a subset of them)", setting="trained_networks")
        integer(self.seed, "seed", 0, 2**32 - 1)
        integer(self.jobs, "jobs", 1, 16)
        if not self.proxies:
            raise UserError("name at least one proxy", setting="proxies")
        object.__setattr__(self, "proxies", tuple(dict.fromkeys(check_proxy_name(p) for p in self.proxies)))
        if self.trained_networks == 0 and not any(is_cheap(p) for p in self.proxies):
            raise UserError("every proxy named trains, and --trained-networks is 0", setting="trained_networks")

    def networks_of(self, proxy: str) -> int:
        """How many of the drawn networks a proxy scores: all N if cheap, the first M if it trains."""
        return self.networks if is_cheap(proxy) else self.trained_networks

    @property
    def run_proxies(self) -> tuple[str, ...]:
        return tuple(p for p in self.proxies if self.networks_of(p) > 0)


def make_proxies(config: ImageNetAuditConfig, out_dir: Path, progress: bool = False) -> list:
    """The Proxy objects of `config.run_proxies`; `supernet` trains the space's supernet once first
    (the audit's `audit_supernet`: the budget's supernet recipe, in OUT/supernet, resumable)."""
    from nas.audit.fidelity import AuditConfig, audit_supernet  # deferred: loads scipy

    out = []
    for name in config.run_proxies:
        if name == "final":
            out.append(TrainingProxy("final", ProxyConfig(config.data, config.budget.final, config.seed,
                                                          config.device, config.threads)))
        elif name == "supernet":
            audit = AuditConfig(space=SPACE, samples=config.trained_networks, budget=config.budget,
                                data=config.data, seed=config.seed, device=config.device, threads=config.threads)
            out.append(audit_supernet(audit, out_dir, progress))
        else:
            out.append(make_proxy(name, config.budget, config.data, config.seed, config.device, config.threads))
    return out


# ---- the run ----------------------------------------------------------------------------------

def _evaluate(proxy, spec) -> dict[str, Any]:
    """One result (module level: the worker processes of `jobs` > 1 call it)."""
    return proxy.evaluate(spec)


def run_imagenet_audit(config: ImageNetAuditConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Evaluate (or reload) every proxy on its networks, then summarise against the records' top-1."""
    from tqdm import tqdm  # deferred: tqdm takes ~0.1 s to load

    from nas.audit.fidelity import ResultCache  # deferred: loads scipy

    start = time.perf_counter()
    records = accel_records()
    indices = draw(config.networks, config.seed, len(records))
    specs = [spec_of(records[i]["architecture"], name=f"accel-{i}") for i in indices]
    top1 = [float(records[i]["metrics"]["val_top1"]) for i in indices]
    latency = predicted_latency_ms(specs, LATENCY_DEVICE)
    proxies = make_proxies(config, out_dir, progress)
    cache = ResultCache(out_dir / "results.jsonl")
    supernet_s = {p.name: p.training_s for p in proxies if hasattr(p, "training_s")}

    def store(spec, proxy, result):
        if proxy.name in supernet_s:  # its one training, spread over the networks it scores
            result.update(score_seconds=result["seconds"], supernet_training_s=supernet_s[proxy.name],
                          seconds=result["seconds"] + supernet_s[proxy.name] / config.trained_networks)
        cache.put(spec.content_hash(), proxy.name, proxy.fingerprint(), jsonable(result))

    todo = [(s, p) for p in proxies for s in specs[:config.networks_of(p.name)]
            if cache.get(s.content_hash(), p.name, p.fingerprint()) is None]
    pool = None
    try:
        with tqdm(total=len(todo), desc="imagenet audit", unit="eval", disable=not progress or None,
                  leave=False) as bar:
            here = todo
            if config.jobs > 1 and any(not p.cheap for _, p in todo):
                import multiprocessing  # deferred: multiprocessing (~50 ms), for the audit's pool only
                from concurrent.futures import ProcessPoolExecutor  # deferred: as above

                pool = ProcessPoolExecutor(config.jobs - 1, mp_context=multiprocessing.get_context("spawn"))
                futures = {pool.submit(_evaluate, p, s): (s, p) for s, p in todo if not p.cheap}
                here = [(s, p) for s, p in todo if p.cheap]

                def collect(block: bool) -> None:
                    while futures:
                        done, _ = wait(list(futures), timeout=None if block else 0, return_when=FIRST_COMPLETED)
                        if not done:
                            return
                        for f in done:
                            s, p = futures.pop(f)
                            store(s, p, f.result())
                            bar.update()
            for spec, proxy in here:
                bar.set_postfix_str(f"{proxy.name} {spec.name}")
                store(spec, proxy, proxy.evaluate(spec))
                bar.update()
                if pool is not None:
                    collect(block=False)
            if pool is not None:
                collect(block=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        cache.close()

    results = {p.name: [cache.get(s.content_hash(), p.name, p.fingerprint())
                        for s in specs[:config.networks_of(p.name)]] for p in proxies}
    summary = summarise(top1, latency, results, config.trained_networks)
    summary["noise"] = reference_noise(top1, latency, config.seed)
    summary["noise"]["latency_kendall_tau_all_records"] = latency_tau_all_records(LATENCY_DEVICE)
    if supernet_s:
        summary["supernet_training_s"] = supernet_s["supernet"]
    used = [r for rs in results.values() for r in rs if r]
    summary.update(reference=REFERENCE_LABEL, space=SPACE, networks=config.networks,
                   trained_networks=config.trained_networks, proxies=list(config.run_proxies),
                   left_out=[p for p in config.proxies if p not in config.run_proxies],
                   seed=config.seed, budget=config.budget.name, data=asdict(config.data),
                   proxy_recipe=asdict(config.budget.proxy), final_recipe=asdict(config.budget.final),
                   zero_cost_batch=config.budget.zero_cost_batch, latency_device=LATENCY_DEVICE,
                   draw="uniform without replacement (a seeded permutation of the records; the trained networks "
                        "are its first M)",
                   top1_range=[min(top1), max(top1)], top1_mean=statistics.fmean(top1),
                   top1_sd=statistics.stdev(top1), jobs=config.jobs,
                   compute_s=round(sum(r.get("seconds") or 0.0 for r in used), 2),
                   wall_s=round(time.perf_counter() - start, 2), out=str(out_dir))
    rows = [{"record": i, "name": s.name, "arch_hash": s.content_hash(), "top1": t, "latency_ms": ms,
             "scores": {n: (rs[k] or {}).get("score") if k < len(rs) else None for n, rs in results.items()}}
            for k, (i, s, t, ms) in enumerate(zip(indices, specs, top1, latency))]
    return {"summary": summary, "rows": rows}


@lru_cache(maxsize=4)
def latency_tau_all_records(device: str) -> float | None:
    """Predicted latency's tau with top-1 over every record: what the drawn N estimate."""
    from nas.audit.ranks import correlation  # deferred: loads scipy

    records = accel_records()
    specs = [spec_of(r["architecture"]) for r in records]
    return correlation([r["metrics"]["val_top1"] for r in records], predicted_latency_ms(specs, device))[0]


# ---- statistics -------------------------------------------------------------------------------

def proxy_row(name: str, top1: Sequence[float], latency_ms: Sequence[float],
              results: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """One proxy on the first len(results) networks: Kendall tau and partial tau at equal latency
    against top-1, each with the noise of unrelated rankings at that n, and the median seconds."""
    from nas.audit.ranks import (correlation, partial_correlation, partial_tau_standard_error,  # deferred: loads scipy
                                 rank_values, tau_standard_error)

    n = len(results)
    ref, lat = list(top1[:n]), list(latency_ms[:n])
    scored = [r for r in results if r is not None]
    values = rank_values(results)
    tau = correlation(ref, values)[0] if len(scored) == n else None
    partial = partial_correlation(ref, values, lat)["partial_tau"] if len(scored) == n else None
    seconds = [r["seconds"] for r in scored if r.get("seconds") is not None]
    kind = ("size" if name in ("macs", "params") else "zero-cost" if is_cheap(name)
            else "supernet" if name == "supernet" else "training")
    return {"proxy": name, "kind": kind, "n": n, "kendall_tau": tau, "tau_se": tau_standard_error(n),
            "partial_tau": partial, "partial_tau_se": partial_tau_standard_error(n),
            "seconds": statistics.median(seconds) if seconds else None,
            "failed": sum(bool(r and r.get("failed")) for r in results), "missing": n - len(scored)}


def latency_row(top1: Sequence[float], latency_ms: Sequence[float], n: int) -> dict[str, Any]:
    """Predicted latency alone as a proxy on the first n networks: its tau with top-1 is the bar every
    proxy's plain tau is measured against; at equal latency it says nothing (partial tau 0)."""
    from nas.audit.ranks import correlation, partial_tau_standard_error, tau_standard_error  # deferred: loads scipy

    return {"proxy": "latency alone", "kind": "baseline", "n": n,
            "kendall_tau": correlation(list(top1[:n]), list(latency_ms[:n]))[0], "tau_se": tau_standard_error(n),
            "partial_tau": 0.0, "partial_tau_se": partial_tau_standard_error(n), "seconds": None,
            "failed": 0, "missing": 0}


def summarise(top1: Sequence[float], latency_ms: Sequence[float],
              results: dict[str, Sequence[dict[str, Any] | None]],
              trained_networks: int | None = None) -> dict[str, Any]:
    """Every proxy on its own networks (`table`), every proxy on the first M networks, where the
    trained ones ran too (`subset`: a like-for-like comparison), latency alone on each, and the
    recommendation at equal latency (`recommend_at_equal_latency`)."""
    table = [proxy_row(name, top1, latency_ms, rs) for name, rs in results.items()]
    sizes = sorted({len(rs) for rs in results.values()}, reverse=True)
    baselines = [latency_row(top1, latency_ms, n) for n in sizes]
    m = trained_networks if trained_networks else min(sizes, default=0)
    subset = []
    if MIN_NETWORKS <= m < max(sizes, default=0):
        subset = [proxy_row(name, top1, latency_ms, list(rs)[:m]) for name, rs in results.items() if len(rs) >= m]
        subset.append(latency_row(top1, latency_ms, m))
    return {"table": table, "latency": baselines, "subset": subset, "subset_n": m if subset else None,
            "kendall_tau": {t["proxy"]: t["kendall_tau"] for t in table},
            "partial_tau": {t["proxy"]: t["partial_tau"] for t in table},
            "seconds": {t["proxy"]: t["seconds"] for t in table},
            "latency_kendall_tau": baselines[0]["kendall_tau"] if baselines else None,
            "recommended": recommend_at_equal_latency(table),
            "recommended_on_subset": recommend_at_equal_latency(subset)}


def recommend_at_equal_latency(table: Sequence[dict[str, Any]]) -> str | None:
    """The cheapest proxy whose partial tau is within one standard error (the best's, at its n) of the
    best partial tau; None where no proxy ranks better than chance at equal latency."""
    scored = [t for t in table if t["partial_tau"] is not None and t["seconds"] is not None]
    if not scored:
        return None
    best = max(scored, key=lambda t: t["partial_tau"])
    if best["partial_tau"] <= best["partial_tau_se"]:
        return None
    close = [t for t in scored if t["partial_tau"] >= best["partial_tau"] - best["partial_tau_se"]]
    return min(close, key=lambda t: t["seconds"])["proxy"]


def reference_noise(top1: Sequence[float], latency_ms: Sequence[float], seed: int,
                    repeats: int = CEILING_REPEATS) -> dict[str, Any]:
    """What one seed of the reference is worth: the authors' measured seed noise (SEED_NOISE) and,
    from it, the ceiling estimated on these networks, the mean over `repeats` draws of the tau and
    the partial tau between two copies of their top-1, each plus normal noise of sd `sd_rms`.

    An estimate under a model (the records taken as the truth, the noise normal and the same for
    every network), not a measurement: it says roughly how far a perfect proxy could reach."""
    from nas.audit.ranks import correlation, partial_correlation  # deferred: loads scipy

    rng = np.random.default_rng([seed, 0x5EED])
    y = np.asarray(top1, dtype=float)
    taus, partials = [], []
    for _ in range(repeats):
        a, b = y + rng.normal(0, SEED_NOISE["sd_rms"], len(y)), y + rng.normal(0, SEED_NOISE["sd_rms"], len(y))
        taus.append(correlation(list(a), list(b))[0])
        partials.append(partial_correlation(a, b, latency_ms)["partial_tau"])
    mean = (lambda v: statistics.fmean(v) if v and None not in v else None)
    return {**SEED_NOISE, "estimated_ceiling_tau": mean(taus), "estimated_partial_ceiling_tau": mean(partials),
            "ceiling_repeats": repeats}
