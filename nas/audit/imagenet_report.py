"""The ImageNet audit's report: its summary as markdown and JSON, written whole or not at all."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from nas.audit.imagenet import ACCEL_NETWORKS
from nas.runtime.files import atomic_write_text


def _num(v, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| proxy | kind | N | Kendall tau ± se | partial tau at equal latency ± se | seconds / network "
             "| failed |", "|---|---|---:|---:|---:|---:|---:|"]
    for t in rows:
        lines.append(f"| {t['proxy']} | {t['kind']} | {t['n']} | {_num(t['kendall_tau'], '+.3f')} ± "
                     f"{_num(t['tau_se'], '.3f')} | {_num(t['partial_tau'], '+.3f')} ± "
                     f"{_num(t['partial_tau_se'], '.3f')} | {_num(t['seconds'], '.3g')} | {t['failed']} |")
    return lines


def markdown_report(summary: dict[str, Any]) -> str:
    noise = summary["noise"]
    data = summary["data"]
    recipe = summary["proxy_recipe"]
    lines = [
        f"# Every proxy against ImageNet: {summary['networks']} networks of Accel-NASBench's MnasNet space",
        "",
        f"Reference: **{summary['reference']}**: top-1 in % on ImageNet after their 16-epoch proxy recipe, "
        f"one training per network; over these networks {summary['top1_range'][0]:.2f}..{summary['top1_range'][1]:.2f} "
        f"(mean {summary['top1_mean']:.2f}, sd {summary['top1_sd']:.2f}).",
        "",
        f"Networks: {summary['networks']} of the {ACCEL_NETWORKS} records, drawn {summary['draw']}, seed "
        f"{summary['seed']}; the trained proxies ran on the first {summary['trained_networks']}. Every proxy "
        f"scores the network as the project's proxies do, on {data['dataset']} at {data['resolution']}x"
        f"{data['resolution']} (budget {summary['budget']}: zero-cost minibatch {summary['zero_cost_batch']}; "
        f"`train` = {recipe['epochs']} epoch(s) on {recipe['train_images']} images, top-1 on "
        f"{recipe['val_images']} held out); none of them sees an ImageNet image.",
        "",
        "Partial tau at equal latency: top-1 and the proxy's score, each in ranks, regressed on the rank of log "
        f"predicted {summary['latency_device']} latency; Kendall tau of the residuals (0 for any score that is a "
        "function of latency alone). ± is the standard deviation of each statistic between unrelated rankings at "
        "that N (the project's `tau_standard_error`, `partial_tau_standard_error`). Seconds: median per network "
        "on this machine.",
        "",
        "## Every proxy on its networks",
        "",
        *_table([*summary["table"], *summary["latency"]]),
        "",
        f"Latency alone: predicted {summary['latency_device']} latency ranks top-1 with tau "
        f"{_num(summary['latency_kendall_tau'], '+.3f')} on these {summary['networks']} networks "
        f"({_num(noise.get('latency_kendall_tau_all_records'), '+.3f')} over all {ACCEL_NETWORKS} records): "
        "the plain tau a proxy must beat to add anything to the reward's latency term; at equal latency the bar "
        "is 0.",
    ]
    if summary.get("subset"):
        lines += ["", f"## Like for like: every proxy on the {summary['subset_n']} trained networks", "",
                  *_table(summary["subset"])]
    lines += [
        "",
        "## The reference's own noise",
        "",
        f"Each record is one seed: how much seed noise the reference holds is not measured for these networks. "
        f"The authors trained {noise['networks']} other networks of the space at {noise['seeds']} seeds with the "
        f"same recipe (an ablation published with their benchmark): the seed-to-seed sd of top-1 is "
        f"{noise['sd_mean']:.2f} points on average (median {noise['sd_median']:.2f}, rms {noise['sd_rms']:.2f}) "
        f"against a spread of {noise['spread_sd']:.2f} points across those networks, and two seeds rank them "
        f"with Kendall tau {noise['seed_pair_tau']:.3f}. Adding noise of that size to these networks' top-1 "
        f"twice gives an estimated ceiling (a model, {noise['ceiling_repeats']} draws, not a measurement) of tau "
        f"{_num(noise['estimated_ceiling_tau'], '+.3f')} and, at equal latency, partial tau "
        f"{_num(noise['estimated_partial_ceiling_tau'], '+.3f')}: the reference is far less noisy than the "
        "Fashion-MNIST one (seed-to-seed tau +0.24..+0.38).",
        "",
        f"Recommended at equal latency (the cheapest proxy within one standard error of the best partial tau): "
        f"{summary['recommended'] or 'none beats chance'}"
        + (f"; among the proxies on the {summary['subset_n']} trained networks: "
           f"{summary['recommended_on_subset'] or 'none beats chance'}" if summary.get("subset") else "") + ".",
    ]
    if summary.get("left_out"):
        lines += ["", f"Named but not run (no trained networks): {', '.join(summary['left_out'])}."]
    if summary.get("supernet_training_s") is not None:
        lines += ["", f"The supernet's one training took {summary['supernet_training_s']:.0f} s, spread over the "
                      f"{summary['trained_networks']} networks it scores in its seconds."]
    lines += ["", f"Compute in these results: {summary['compute_s']:.0f} s; wall time of the run that wrote this "
                  f"report: {summary['wall_s']:.0f} s with {summary['jobs']} process(es) (results computed earlier "
                  "are reloaded, not recomputed)."]
    return "\n".join(lines) + "\n"


def write_report(audit: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """imagenet_audit.md and imagenet_audit.json in `out_dir`, each written whole; their paths."""
    paths = {"markdown": out_dir / "imagenet_audit.md", "json": out_dir / "imagenet_audit.json"}
    atomic_write_text(paths["markdown"], markdown_report(audit["summary"]))
    atomic_write_text(paths["json"], json.dumps(audit, indent=1, sort_keys=True) + "\n")
    return {k: str(v) for k, v in paths.items()}
