"""The audit's outputs: a markdown table, the JSON of every number, and two plots (all written whole)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.audit.fidelity import CASCADE_KEEP
from nas.audit.ranks import rank_values
from nas.runtime.files import atomic_write_text
from nas.runtime.plots import pyplot, save_figure


KIND_COLOURS = {"zero-cost": "C0", "training": "C1", "cascade": "C2", "supernet": "C3"}


def _num(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def markdown_table(summary: dict[str, Any]) -> str:
    ref = summary["reference"]
    lines = [
        f"# Proxy fidelity audit: {summary['space']}, {summary['samples']} architectures "
        f"({summary.get('population', 'random')}), budget {summary['budget']}, seed {summary['seed']}",
        "",
        f"Reference: {summary['reference_recipe']['epochs']} epochs on {summary['reference_recipe']['train_images']} "
        f"{summary['data']['dataset']} images at {summary['data']['resolution']}x{summary['data']['resolution']}, "
        f"top-1 on {summary['reference_recipe']['val_images']} held-out images: "
        f"{_num(ref['accuracy_min'], '.3f')}..{_num(ref['accuracy_max'], '.3f')} "
        f"(mean {_num(ref['accuracy_mean'], '.3f')}), {_num(ref['seconds'], '.1f')} s per training (median).",
        "",
        *_ceiling_lines(summary),
        "| proxy | kind | Kendall tau | Spearman rho | partial tau at equal latency | seconds / arch | failed |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t in summary["table"]:
        marks = [label for label, key in (("recommended", "recommended"), ("for the reward", "recommended_for_reward"))
                 if summary.get(key) == t["proxy"]]
        mark = f" ({', '.join(marks)})" if marks else ""
        lines.append(f"| {t['proxy']}{mark} | {t['kind']} | {_num(t['kendall_tau'], '+.3f')} | "
                     f"{_num(t['spearman'], '+.3f')} | {_num(t.get('partial_tau'), '+.3f')} | "
                     f"{_num(t['seconds'], '.3f')} | {t['failed']} |")
    se = summary["tau_standard_error"]
    lines += ["", f"Kendall tau of unrelated rankings has standard deviation {_num(se, '.3f')} at this N; "
              "the recommendation is the cheapest non-baseline proxy within that of the best tau, and the one "
              "for the reward the cheapest such proxy that yields an accuracy (training or cascade). "
              f"A cascade trains the top {CASCADE_KEEP:.0%} by its zero-cost score and gives the rest the "
              "lowest trained accuracy; its seconds are the zero-cost score plus that share of a training.",
              f"Compute in these results: {summary['compute_s']:.0f} s; wall time of the run that wrote this "
              f"report: {summary['wall_s']:.0f} s (results computed earlier are reloaded, not recomputed).",
              "Partial tau at equal latency: the reference's and the proxy's ranks, each regressed on the rank of "
              "log predicted Pixel-1 latency, Kendall tau of the residuals (as against published top-1 below): "
              "what a search at a latency target needs. Predicted latency alone has Kendall tau "
              f"{_num(summary.get('latency_kendall_tau'), '+.3f')} with the reference."]
    lines += _published_lines(summary.get("published"))
    return "\n".join(lines) + "\n"


def _ceiling_lines(summary: dict[str, Any]) -> list[str]:
    seeds = summary.get("reference_seeds") or []
    if len(seeds) < 2:
        return [f"Reference trained at one seed ({', '.join(map(str, seeds)) or '–'}): no seed-to-seed ceiling.", ""]
    pairs = ", ".join(_num(t, "+.3f") for t in summary["reference_seed_pair_taus"])
    return [f"Reference: the mean top-1 over seeds {', '.join(map(str, seeds))}. Seed-to-seed Kendall tau of the "
            f"reference (the ceiling a proxy can be expected to reach): "
            f"{_num(summary['reference_ceiling_tau'], '+.3f')}"
            + (f" (mean of the pairs {pairs})" if len(seeds) > 2 else "")
            + f"; tau of unrelated rankings has standard deviation {_num(summary['tau_standard_error'], '.3f')} "
              "at this N. Averaging the seeds cuts the reference's noise: two independent means of "
              f"{len(seeds)} seeds would rank with tau about {_num(summary.get('reference_mean_ceiling_tau'), '+.3f')} "
              "(Spearman-Brown on one training's reliability; an estimate)."
            + _half_line(summary, len(seeds))
            + (f" At equal latency the seeds agree with partial tau "
               f"{_num(summary['reference_partial_ceiling_tau'], '+.3f')} (one seed against another)."
               if summary.get("reference_partial_ceiling_tau") is not None else ""), ""]


def _half_line(summary: dict[str, Any], seeds: int) -> str:
    half = summary.get("reference_half_ceiling_tau")
    if half is None:
        return ""
    return (f" Measured: the means of two disjoint halves of the seeds ({seeds // 2} each) rank with tau "
            f"{_num(half, '+.3f')}, the ceiling of a {seeds // 2}-seed reference; the {seeds}-seed mean ranks better.")


def _published_lines(pub: dict[str, Any] | None) -> list[str]:
    if not pub:
        return []
    lines = ["", f"## Against published ImageNet top-1 ({pub['n']} networks of the reference zoo)", "",
             "| proxy | kind | Kendall tau | partial tau at equal latency | partial Pearson | seconds / arch | failed |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for t in pub["table"]:
        lines.append(f"| {t['proxy']} | {t['kind']} | {_num(t['kendall_tau'], '+.3f')} | "
                     f"{_num(t['partial_tau'], '+.3f')} | {_num(t['partial_pearson'], '+.3f')} | "
                     f"{_num(t['seconds'], '.3f')} | {t['failed']} |")
    lines += ["", f"Predicted {pub['latency_device']} latency alone has Kendall tau "
              f"{_num(pub['latency_kendall_tau'], '+.3f')} with published top-1. Partial tau and Pearson: published "
              f"top-1 and the proxy's score, each in ranks, regressed on the rank of log predicted "
              f"{pub['latency_device']} latency; Kendall tau and Pearson r of the two residuals (0 for a score that is "
              f"a function of latency alone). Noise at n = {pub['n']}: tau of unrelated rankings has standard "
              f"deviation {_num(pub['tau_standard_error'], '.3f')}, the partial tau "
              f"{_num(pub['partial_tau_standard_error'], '.3f')}.", "",
              "| network | published top-1 | published Pixel-1 ms | predicted ms |", "|---|---:|---:|---:|"]
    lines += [f"| {n['network']} | {n['top1']:.1f} | {n['pixel1_ms']:g} | {n['predicted_ms']:.1f} |"
              for n in pub["networks"]]
    return lines


def write_report(audit: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """audit.md, audit.json, scatter.png and fidelity.png in `out_dir`; returns their paths."""
    summary, rows = audit["summary"], audit["rows"]
    paths = {"markdown": out_dir / "audit.md", "json": out_dir / "audit.json",
             "scatter": out_dir / "scatter.png", "fidelity": out_dir / "fidelity.png"}
    atomic_write_text(paths["markdown"], markdown_table(summary))
    atomic_write_text(paths["json"], json.dumps(audit, indent=1, sort_keys=True) + "\n")
    _plots(summary, rows, paths["scatter"], paths["fidelity"])
    return {k: str(v) for k, v in paths.items()}


def _plots(summary: dict[str, Any], rows: list[dict[str, Any]], scatter: Path, fidelity: Path) -> None:
    plt = pyplot()
    ref = rank_values([r["reference"] for r in rows])
    table = [t for t in summary["table"] if t["kind"] != "cascade"]  # a cascade's scores live in no row
    cols = 4
    nrows = -(-len(table) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False)
    for ax, t in zip(axes.flat, table):
        ax.scatter(rank_values([r[t["proxy"]] for r in rows]), ref, s=14)
        ax.set_title(f"{t['proxy']}  tau {_num(t['kendall_tau'], '+.2f')}", fontsize=9)
        ax.set_xlabel("proxy score", fontsize=8)
        ax.set_ylabel("reference top-1", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(table):]:
        ax.axis("off")
    fig.suptitle(f"{summary['space']}: proxies against the reference ({summary['samples']} architectures)")
    save_figure(fig, scatter)

    fig, ax = plt.subplots(figsize=(6, 4))
    for t in table:
        if t["kendall_tau"] is not None and t["seconds"]:
            ax.scatter(t["seconds"], t["kendall_tau"], color=KIND_COLOURS[t["kind"]])
            ax.annotate(t["proxy"], (t["seconds"], t["kendall_tau"]), fontsize=8, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per architecture (log)")
    ax.set_ylabel("Kendall tau vs reference")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title("fidelity against cost (blue: zero-cost, orange: training, green: cascade)", fontsize=9)
    save_figure(fig, fidelity)
