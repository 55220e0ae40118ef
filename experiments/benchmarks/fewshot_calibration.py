"""Few-shot calibration: with k end-to-end timings of a phone, how well does each latency model
predict other networks on that phone?

    NAS_CACHE_DIR=/tmp/nas-cache .venv/bin/python experiments/benchmarks/fewshot_calibration.py
        [--ks 5,10,20] [--repeats 20] [--test 1000] [--pool 200] [--resolutions 160,176,192,208,224]
        [--seed 0] [--out experiments/benchmarks/results/fewshot_calibration.txt]
        [--figure docs/figures/fewshot_calibration.png]

The phone is a Samsung Note10: its latency of a network is the sum of the network's layers in
once-for-all's per-layer tables (`get_device('note10')`), standing in for end-to-end timings. The
networks come from the once-for-all MobileNetV3 space (`ofa_mobilenetv3`), drawn with a fixed seed
and distinct by content hash: `--test` of them are the test set, `--pool` others are what the k
calibration networks are drawn from. Each repeat draws a fresh order of that pool (its own seed);
the first k of it calibrate, so within a repeat the 5 networks are among the 10, the 10 among the
20. Every model is fitted on those k networks' Note10 latencies alone:

- few-shot calibrated: what `python -m nas.latency calibrate` fits (`nas.latency.fit.calibrate`,
  model "auto": every candidate the k networks can support, the lowest leave-one-out error kept);
- pixel1-style refit: pixel1's feature set (roofline_se) refitted (`calibrate(..., "roofline_se")`;
  it needs one more network than its five terms, so none at k=5);
- pixel1 rescaled: pixel1's shipped coefficients times one scale, fitted by the same relative-error
  least squares (`fit_nnls` on the one column of pixel1's predictions);
- host table: this machine's ONNX Runtime per-op table (`host_device(threads=1)`, filled lazily into
  the user cache, so a second run measures nothing), ms = scale * sum + offset fitted by
  `fit_scale_offset`.

Each fit predicts the test networks; the table gives the median and 90th-percentile absolute
percentage error and Kendall's tau against Note10, each as the median [10th, 90th percentile]
over the repeats. Two references need no fit: pixel1 as shipped and the raw host sum.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nas.core.spec import ArchSpec  # noqa: E402
from nas.latency.calibrated import CalibratedDevice  # noqa: E402
from nas.latency.fit import calibrate, fit_nnls  # noqa: E402
from nas.runtime.errors import UserError  # noqa: E402

GROUND_TRUTH = ("Note10 per-layer tables measured by once-for-all's authors (sum of layers), "
                "standing in for phone timings")
SPACE = "ofa_mobilenetv3"

# Models fitted on the k networks, in the table's order.
FITTED = ("few-shot calibrated (auto)", "pixel1-style refit (roofline_se)", "pixel1 rescaled (1 scale)",
          "host table (scale*sum+offset)")
# References that take no fit.
UNFITTED = ("pixel1 as shipped (no fit)", "host sum (no fit)")
METRICS = ("median_ape", "p90_ape", "tau")


# ---- pure helpers (pinned by tests/unit/project/test_fewshot_calibration.py) --------------------
def error_summary(pred: Sequence[float], truth: Sequence[float]) -> dict[str, float]:
    """Median and 90th-percentile absolute percentage error of `pred` against `truth`, and Kendall's
    tau (tau-b) between them."""
    p, t = np.asarray(pred, float), np.asarray(truth, float)
    ape = np.abs(p / t - 1.0) * 100
    return {"median_ape": float(np.median(ape)), "p90_ape": float(np.quantile(ape, 0.9)),
            "tau": float(stats.kendalltau(p, t).statistic)}


def spread(values: Sequence[float]) -> tuple[float, float, float] | None:
    """Median, 10th and 90th percentile over repeats (NaNs, i.e. no fit, left out); None when empty."""
    v = np.asarray([x for x in values if x == x], float)
    if not len(v):
        return None
    q10, q50, q90 = np.quantile(v, [0.1, 0.5, 0.9])
    return float(q50), float(q10), float(q90)


def fmt_spread(s: tuple[float, float, float] | None, digits: int = 1) -> str:
    if s is None:
        return "–"
    m, lo, hi = s
    if round(lo, digits) == round(hi, digits):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def draw_pool(space, n: int, seed: int, resolutions: Sequence[int] | None = None) -> list[ArchSpec]:
    """n networks of the space, distinct by content hash, in the order drawn (keeping only the given
    input resolutions, if any)."""
    rng = np.random.default_rng(seed)
    seen, out = set(), []
    for _ in range(100 * n + 1000):
        spec = space.decode(space.sample(rng))
        h = spec.content_hash()
        if h in seen or (resolutions and spec.resolution not in resolutions):
            continue
        seen.add(h)
        out.append(spec)
        if len(out) == n:
            return out
    raise RuntimeError(f"could draw only {len(out)} distinct networks of {n}")


# ---- the models ---------------------------------------------------------------------------------
def fit_calibrated(specs: Sequence[ArchSpec], ms: np.ndarray, model: str) -> tuple[CalibratedDevice, str] | None:
    """The device `python -m nas.latency calibrate --model MODEL` would write; None where k is too few."""
    try:
        fit, _ = calibrate(specs, ms, model)
    except UserError:
        return None
    return CalibratedDevice(f"fewshot-{fit.model}", fit.features, fit.coef, fit.spread()), fit.model


def fit_rescale(base: np.ndarray, ms: np.ndarray) -> float:
    """One scale for another device's predictions, minimising the squared relative error (as calibrate)."""
    return float(fit_nnls(np.asarray(base, float)[:, None], np.asarray(ms, float))[0])


# ---- the host table -----------------------------------------------------------------------------
def host_sums(specs: Sequence[ArchSpec], chunk: int = 64) -> tuple[np.ndarray, dict]:
    """Raw per-op sums on this machine's ONNX Runtime table (threads=1), measuring missing ops chunk
    by chunk (each chunk is saved to the cache, so an interrupted run keeps what it measured)."""
    from nas.latency.devices import host_device
    from nas.latency.ops import ops_of

    began = time.perf_counter()
    host = host_device(threads=1)  # calibrates the table on whole networks the first time
    ops = list({op.key: op for spec in specs for op in ops_of(spec)}.values())
    missing = [op for op in ops if op.key not in host.table.ops]
    for start in range(0, len(missing), chunk):
        part = missing[start:start + chunk]
        t0 = time.perf_counter()
        host.ensure_ops(part)
        print(f"  host table: measured ops {start + len(part)}/{len(missing)} "
              f"({time.perf_counter() - t0:.0f} s this chunk)", file=sys.stderr, flush=True)
    sums = np.array([host.raw_sum(s)[0] for s in specs], float)
    info = {"ops": len(ops), "measured_now": len(missing), "seconds": time.perf_counter() - began,
            "table": host.table.path.name if host.table.path else "(in memory)",
            "device": host.table.device, "calibration": dict(host.table.calibration or {})}
    return sums, info


# ---- the experiment -----------------------------------------------------------------------------
def run_repeats(cal_pool: list[ArchSpec], test: list[ArchSpec], truth_cal: np.ndarray, truth_test: np.ndarray,
                p1_cal: np.ndarray, p1_test: np.ndarray, host_cal: np.ndarray, host_test: np.ndarray,
                ks: Sequence[int], repeats: int, seed: int):
    """Per (model, k): a list (one per repeat) of error summaries on the test set; and, per k, the
    few-shot candidate chosen in each repeat."""
    from nas.latency.calibrate_host import fit_scale_offset

    results = {(m, k): [] for m in FITTED for k in ks}
    chosen = {k: Counter() for k in ks}
    nan = {m: float("nan") for m in METRICS}
    for r in range(repeats):
        order = np.random.default_rng([seed, 1, r]).permutation(len(cal_pool))
        for k in ks:
            idx = order[:k]
            specs, ms = [cal_pool[i] for i in idx], truth_cal[idx]
            got = fit_calibrated(specs, ms, "auto")
            if got is None:
                results[(FITTED[0], k)].append(nan)
            else:
                results[(FITTED[0], k)].append(error_summary(got[0].predict_many(test)[:, 0], truth_test))
                chosen[k][got[1]] += 1
            got = fit_calibrated(specs, ms, "roofline_se")
            results[(FITTED[1], k)].append(
                nan if got is None else error_summary(got[0].predict_many(test)[:, 0], truth_test))
            scale = fit_rescale(p1_cal[idx], ms)
            results[(FITTED[2], k)].append(error_summary(scale * p1_test, truth_test))
            c = fit_scale_offset(host_cal[idx], ms)
            results[(FITTED[3], k)].append(error_summary(c["scale"] * host_test + c["offset_ms"], truth_test))
    return results, chosen


def summarise(results: dict) -> dict:
    return {key: {m: spread([row[m] for row in rows]) for m in METRICS} for key, rows in results.items()}


def table(summary: dict, unfitted: dict, chosen: dict, ks: Sequence[int]) -> str:
    lines = ["| model | k | median APE % | p90 APE % | Kendall tau | few-shot model chosen (of repeats) |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for m in FITTED:
        for k in ks:
            s = summary[(m, k)]
            pick = ", ".join(f"{n} {c}" for n, c in chosen[k].most_common()) if m == FITTED[0] else ""
            lines.append(f"| {m} | {k} | {fmt_spread(s['median_ape'])} | {fmt_spread(s['p90_ape'])} | "
                         f"{fmt_spread(s['tau'], 3)} | {pick} |")
    for m in UNFITTED:
        e = unfitted[m]
        lines.append(f"| {m} | – | {e['median_ape']:.1f} | {e['p90_ape']:.1f} | {e['tau']:.3f} | |")
    return "\n".join(lines)


def plot(summary: dict, ks: Sequence[int], n_test: int, path: Path) -> None:
    from nas.runtime.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    titles = {"median_ape": f"median |error| % on {n_test:,} test networks", "p90_ape": "90th-percentile |error| %",
              "tau": "Kendall tau vs Note10"}
    for ax, metric in zip(axes, METRICS):
        for i, m in enumerate(FITTED):
            pts = [(k, summary[(m, k)][metric]) for k in ks if summary[(m, k)][metric] is not None]
            if not pts:
                continue
            x = [k for k, _ in pts]
            med, lo, hi = (np.array([s[j] for _, s in pts]) for j in range(3))
            ax.plot(x, med, "o-", color=f"C{i}", label=m)
            ax.fill_between(x, lo, hi, color=f"C{i}", alpha=0.18, linewidth=0)
        ax.set_xscale("log")
        ax.set_xticks(list(ks))
        ax.set_xticklabels([str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("k calibration networks (Note10 latencies)")
        ax.set_title(titles[metric], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(bottom=0)
    axes[2].legend(fontsize=7.5, loc="center right")
    fig.suptitle("Few-shot calibration on the OFA MobileNetV3 space; ground truth: Note10 per-layer tables "
                 "(sum of layers). Line: median over repeats; band: 10th-90th percentile", fontsize=9)
    save_figure(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--ks", default="5,10,20", help="calibration set sizes (comma-separated)")
    p.add_argument("--repeats", type=int, default=20, help="draws of the calibration networks")
    p.add_argument("--test", type=int, default=1000, help="test networks (fixed across repeats)")
    p.add_argument("--pool", type=int, default=200, help="networks the calibration sets are drawn from")
    p.add_argument("--resolutions", default="", help="keep only these input resolutions (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "experiments/benchmarks/results/fewshot_calibration.txt"))
    p.add_argument("--figure", default=str(ROOT / "docs/figures/fewshot_calibration.png"))
    args = p.parse_args()
    ks = sorted(int(k) for k in args.ks.split(","))
    if ks[-1] > args.pool:
        p.error(f"k={ks[-1]} exceeds the calibration pool ({args.pool})")
    resolutions = [int(r) for r in args.resolutions.split(",")] if args.resolutions else None

    from nas.core.space import load_space
    from nas.latency.devices import get_device
    from nas.runtime.files import atomic_write_text

    began, load0 = time.perf_counter(), os.getloadavg()
    space = load_space(SPACE)
    specs = draw_pool(space, args.test + args.pool, args.seed, resolutions)
    test, cal_pool = specs[:args.test], specs[args.test:]
    truth = get_device("note10").predict_many(specs)[:, 0]
    p1 = get_device("pixel1").predict_many(specs)[:, 0]
    print(f"host table for {len(specs)} networks ...", file=sys.stderr, flush=True)
    host, info = host_sums(specs)
    n = args.test
    results, chosen = run_repeats(cal_pool, test, truth[n:], truth[:n], p1[n:], p1[:n], host[n:], host[:n],
                                  ks, args.repeats, args.seed)
    summary = summarise(results)
    unfitted = {UNFITTED[0]: error_summary(p1[:n], truth[:n]), UNFITTED[1]: error_summary(host[:n], truth[:n])}
    wall = time.perf_counter() - began

    res_counts = Counter(s.resolution for s in test)
    dev = info["device"]
    calib = info["calibration"]
    header = [
        "Few-shot calibration: how well each latency model predicts other networks of a phone from k timings",
        f"Ground truth: {GROUND_TRUTH}.",
        f"Networks: {SPACE} space, {args.test} test networks (fixed) and a pool of {args.pool} others the k "
        f"calibration networks are drawn from (seed {args.seed}, distinct by content hash; test resolutions "
        + ", ".join(f"{r}: {c}" for r, c in sorted(res_counts.items())) + "). "
        f"Note10 latency of the test networks: {truth[:n].min():.1f}-{truth[:n].max():.1f} ms "
        f"(median {np.median(truth[:n]):.1f}).",
        f"Repeats: {args.repeats} draws of the calibration networks (nested: the first k of one shuffled pool "
        "per repeat); each cell is the median [10th, 90th percentile] over the repeats; a single number means "
        "the repeats agree to the digits shown; – where the model cannot be fitted (roofline_se needs >= 6).",
        f"Host table: ONNX Runtime, 1 thread, {dev.get('cpu', '?')} ({dev.get('runtime', '?')}); "
        f"{info['ops']} ops, {info['measured_now']} measured this run ({info['seconds']:.0f} s incl. loading), "
        f"cache file {info['table']}. Its own whole-network correction on this machine (not used here): "
        f"scale {calib.get('scale', float('nan')):.3f}, offset {calib.get('offset_ms', float('nan')):.3f} ms "
        f"on {calib.get('fitted_on', '?')} networks.",
        "NOTE: other heavy jobs ran on this 2-core machine at the same time, so the host timings are noisier "
        f"than usual (load average {load0[0]:.2f} at start, {os.getloadavg()[0]:.2f} at the end).",
        "Kendall tau of pixel1 rescaled and of the host table is that of their unfitted references whenever "
        "the fitted scale is positive (a positive affine map keeps the ranking).",
    ]
    text = "\n".join(header) + "\n\n" + table(summary, unfitted, chosen, ks) + "\n\n" + (
        f"Command: NAS_CACHE_DIR=<cache> .venv/bin/python experiments/benchmarks/fewshot_calibration.py "
        f"--ks {','.join(map(str, ks))} --repeats {args.repeats} --test {args.test} --pool {args.pool}"
        + (f" --resolutions {args.resolutions}" if args.resolutions else "") + f" --seed {args.seed}\n"
        f"Wall time: {wall:.0f} s (host table {info['seconds']:.0f} s).\n")
    print(text)
    atomic_write_text(Path(args.out), text)
    plot(summary, ks, args.test, Path(args.figure))
    print(f"wrote {args.out} and {args.figure}", file=sys.stderr)


if __name__ == "__main__":
    main()
