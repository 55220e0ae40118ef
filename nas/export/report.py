"""The run report: report.md and its plots, from the run directory's plain files."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nas.runtime.files import atomic_write_text
from nas.runtime.plots import pyplot, save_figure
from nas.runtime.stats import mean_sd


def pareto_front(latency: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of samples no other sample beats on both latency (lower) and accuracy (higher)."""
    order = np.lexsort((-np.asarray(accuracy), np.asarray(latency)))
    front, best = [], -np.inf
    for i in order:
        if accuracy[i] > best:
            front.append(int(i))
            best = accuracy[i]
    return front


def _rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    return np.array([np.median(x[max(0, i - window + 1):i + 1]) for i in range(len(x))])


def plot_search(samples: list[dict], target_ms: float, out: Path) -> Path:
    plt = pyplot()
    reward = np.array([s["reward"] for s in samples])
    latency = np.array([s["latency_ms"] for s in samples])
    window = max(5, len(samples) // 25)
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    a.plot(reward, ".", ms=2, alpha=0.35, color="tab:blue")
    a.plot(_rolling_median(reward, window), color="tab:blue", lw=2, label=f"rolling median ({window})")
    a.set_ylabel("reward")
    a.legend(loc="lower right")
    b.plot(latency, ".", ms=2, alpha=0.35, color="tab:orange")
    b.plot(_rolling_median(latency, window), color="tab:orange", lw=2)
    b.axhline(target_ms, color="k", ls="--", lw=1, label=f"target {target_ms:g} ms")
    b.axhspan(0.9 * target_ms, 1.1 * target_ms, color="k", alpha=0.06, label="±10%")
    b.set_ylabel("predicted latency (ms)")
    b.set_xlabel("sample")
    b.legend(loc="upper right")
    fig.suptitle("The search learning: reward and latency over samples")
    return save_figure(fig, out / "search_progress.png")


def plot_pareto(samples: list[dict], comparison: list[dict], target_ms: float, proxy: str, mapped: bool,
                out: Path) -> Path:
    """Two quantities, two panels: what the search ranked by, and what the final recipe measured."""
    plt = pyplot()
    lat = [s["latency_ms"] for s in samples]
    acc = [s["accuracy"] for s in samples]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    a.scatter(lat, acc, s=6, alpha=0.3, label="samples")
    front = pareto_front(lat, acc)
    a.plot([lat[i] for i in front], [acc[i] for i in front], "-", color="tab:green", lw=1.5, label="Pareto front")
    label = comparison[0].get("accuracy_label") if comparison else None
    a.set_ylabel(f"{proxy} score mapped onto an accuracy scale" if mapped else
                 f"{proxy}: {label}" if label else f"{proxy} accuracy (one seed)")
    a.set_title("What the search ranked by (not a measured accuracy)" if mapped or label else "What the search measured")
    for ax in (a, b):
        ax.axvline(target_ms, color="k", ls="--", lw=1)
        ax.set_xlabel("predicted latency (ms)")
    a.legend(loc="lower right")
    colors = {"final": "tab:red", "width_scaled": "tab:blue", "netadapted": "tab:purple"}
    for r in comparison:
        b.errorbar([r["latency_ms"]], [r["accuracy_mean"]], yerr=[r["accuracy_sd"] or 0.0], fmt="o", capsize=4,
                   color=colors.get(r["kind"], "k"), label=f"{r['kind']}: {r['name']}")
    seeds = comparison[0]["seeds"] if comparison else 0
    xs = [r["latency_ms"] for r in comparison] + [0.96 * target_ms, 1.04 * target_ms]
    b.set_xlim(min(xs), max(xs))  # at least +-4% around the target: the baselines sit within 2% of it
    b.set_ylabel("top-1 (each row's source in report.md)" if label else f"top-1, final recipe (mean ± sd, {seeds} seeds)")
    b.set_title("Beside others' networks of the space" if label else "Trained and compared at the target")
    b.legend(loc="best", fontsize=7)
    return save_figure(fig, out / "pareto.png")


def plot_netadapt(history: list[dict], target_ms: float, out: Path) -> Path | None:
    """`history`: NetAdapt's iteration records (iteration 0 is the seed)."""
    if not history:
        return None
    plt = pyplot()
    lat = [h["latency_ms"] for h in history]
    acc = [h.get("accuracy") for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(lat, acc, "o-")
    for i, (x, y) in enumerate(zip(lat, acc)):
        ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.axvline(target_ms, color="k", ls="--", lw=1, label=f"target {target_ms:g} ms")
    ax.invert_xaxis()
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("proxy accuracy after fine-tune")
    ax.set_title("NetAdapt trajectory (iteration numbers)")
    ax.legend()
    return save_figure(fig, out / "netadapt.png")


def plot_latency_check(points: list[dict], out: Path, title: str) -> Path | None:
    """Predicted vs measured (or published) latency, with the y = x line and +-5% band."""
    if not points:
        return None
    plt = pyplot()
    pred = np.array([p["predicted_ms"] for p in points])
    meas = np.array([p["measured_ms"] for p in points])
    lo, hi = 0.9 * min(pred.min(), meas.min()), 1.1 * max(pred.max(), meas.max())
    fig, ax = plt.subplots(figsize=(5.5, 5))
    xs = np.linspace(lo, hi, 10)
    ax.plot(xs, xs, "k-", lw=1)
    ax.fill_between(xs, 0.95 * xs, 1.05 * xs, color="k", alpha=0.08, label="±5%")
    ax.scatter(meas, pred, zorder=3)
    for p in points:
        ax.annotate(p["name"], (p["measured_ms"], p["predicted_ms"]), textcoords="offset points", xytext=(4, 3),
                    fontsize=7)
    ax.set_xlabel("measured ms")
    ax.set_ylabel("predicted ms")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return save_figure(fig, out / "latency_check.png")


# fmt and the cells below are shared with the family report (family_report.py).
def fmt(x: Any, digits: int = 2) -> str:
    """A table cell: floats to `digits` places, integers with thousands separators, None as a dash."""
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def accuracy_cell(row: dict) -> str:
    if row.get("accuracy_label"):  # a model's prediction or a published figure: one value, no seeds
        return f"{row['accuracy_mean']:.4f}"
    return mean_sd(row["accuracy_mean"], row["accuracy_sd"])


def macs_cell(macs: int | None) -> str:
    return "–" if macs is None else f"{macs / 1e6:.1f}M"


def difference_cell(row: dict) -> str:
    d = row.get("difference")
    if not d:
        return "–"
    ci = f" [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}]" if d["ci_low"] is not None else ""
    return f"{100 * d['mean']:+.2f}{ci} ({row['judgement']})"


def _deploy_lines(summary: dict) -> list[str]:
    """Files to ship, int8 against fp32 and the command that trains the final network."""
    d = summary.get("deploy") or {}
    lines = ["## Deployment", "", f"- ONNX: `{summary['onnx']}`",
             f"- TFLite: `{d['tflite']}` (channels-last input; LiteRT vs torch max abs diff "
             f"{fmt(d.get('tflite_max_abs_diff'), 8)})" if d.get("tflite") else f"- TFLite: {d.get('tflite_note', '–')}",
             "- Both hold random weights: the architecture. Train it (MobileNetV3's recipe, writing trained "
             "ONNX and TFLite) with", "", f"      {summary['train_command']}", ""]
    int8 = d.get("int8") or {}
    timed = [(name, int8[k]) for name, k in (("ONNX Runtime (QDQ)", "onnxruntime"), ("LiteRT (XNNPACK)", "litert"))
             if int8.get(k)]
    if timed:
        lines += ["### int8 against fp32", "",
                  "Latency at the deployed input on this host (1 thread, fp32 and int8 timed interleaved; "
                  "speed-up = the ratio of the medians, fp32 / int8; in brackets the p10–p90 of the per-round "
                  "ratios, which need not contain it):", "",
                  "| runtime | fp32 ms | int8 ms | speed-up (p10–p90) |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {name} | {t['fp32_ms']:.3f} | {t['int8_ms']:.3f} | {t['speedup']:.2f} "
                  f"({t['speedup_p10']:.2f}–{t['speedup_p90']:.2f}) |" for name, t in timed]
        lines.append("")
    acc = int8.get("accuracy")
    if acc:
        lines += [f"Top-1 on the proxy task's {acc['val_images']} held-out images, of the final network trained "
                  f"in the compare stage (first seed), quantized with {acc['calibration_images']} training images "
                  "(one trained network: the drop is paired on the same images, but not averaged over seeds):", "",
                  "| model | top-1 | drop from fp32 (points) |", "| --- | ---: | ---: |",
                  f"| fp32 (torch) | {acc['fp32_top1']:.4f} | – |"]
        lines += [f"| {name} | {acc[k + '_top1']:.4f} | {acc[k + '_drop_points']:+.2f} |"
                  for name, k in (("int8 ONNX Runtime", "onnx_int8"), ("int8 LiteRT", "tflite_int8"))
                  if acc.get(k + "_top1") is not None]
        lines.append("")
    elif int8.get("note"):
        lines += [f"int8 accuracy: {int8['note']}", ""]
    return lines


def write_report(run_dir: Path, summary: dict, samples: list[dict], netadapt_history: list[dict],
                 latency_points: list[dict], latency_title: str, proxy_mapped: bool = False) -> Path:
    """report.md with the plots beside it; everything comes from plain data."""
    target = summary["target_ms"]
    rows = summary["comparison"]
    plots = [plot_search(samples, target, run_dir) if samples else None,
             plot_pareto(samples, rows, target, summary["proxy"], proxy_mapped, run_dir) if samples else None,
             plot_netadapt(netadapt_history, target, run_dir),
             plot_latency_check(latency_points, run_dir, latency_title)]
    seeds = rows[0]["seeds"]
    label = rows[0].get("accuracy_label")
    top1_row = (f"| top-1: {label} | {accuracy_cell(rows[0])} |" if label else
                f"| top-1, trained from scratch with the final recipe (mean ± sd, {seeds} seeds) | {accuracy_cell(rows[0])} |")
    compare_head = (["## Beside others' networks of the space (nothing trained here)", "",
                     "Each row's top-1 says where it comes from: a model's prediction (exact for that model, no seed "
                     "noise) or a published measurement. Difference: the final network's top-1 minus the row's, in "
                     "points; it compares like with like only where both come from the same model."]
                    if label else
                    ["## At equal latency (each trained from scratch with the final recipe, seeds paired)", "",
                     "Difference: the final network's top-1 minus the baseline's, in points, with its 95% confidence "
                     "interval over the paired seeds (t distribution)."])
    lines = [
        f"# Search report: {summary['run']}",
        "",
        f"Target **{target:g} ms** on **{summary['device']}**, space `{summary['space']}`, proxy "
        f"`{summary['proxy']}`, budget `{summary['budget']}`, seed {summary['seed']}.",
        "",
        f"**Verdict:** {summary['verdict']}.",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| target latency (ms) | {target:g} |",
        f"| predicted latency on {summary['device']} (ms) | {fmt(summary['predicted_ms'])} "
        f"({fmt(100 * (summary['predicted_ms'] / target - 1), 1)}% from target) |",
        f"| measured on this host, ONNX Runtime 1 thread (ms) | {fmt(summary.get('measured_host_ms'), 3)} |",
        top1_row,
        f"| top-1 after NetAdapt's fine-tuning (one seed, NetAdapt's short recipe) | "
        f"{fmt(summary.get('netadapt_accuracy'), 4)} |",
        f"| parameters | {fmt(summary['params'])} |",
        f"| multiply-adds | {summary['macs'] / 1e6:.1f}M |",
        f"| ONNX Runtime vs torch, max abs diff | {fmt(summary.get('max_abs_diff'), 8)} |",
        f"| samples evaluated | {summary['samples']} |",
        f"| wall time (s) | {fmt(summary['wall_s'], 0)} |",
        "",
        *compare_head,
        "",
        "| network | kind | predicted ms | vs target | top-1 (mean ± sd) | final − this, points [95% CI] | "
        "params | MACs | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['kind']} | {fmt(r['latency_ms'])} | {r['latency_vs_target_pct']:+.1f}% | "
                     f"{accuracy_cell(r)} | {difference_cell(r)} | {fmt(r['params'])} | "
                     f"{macs_cell(r['macs'])} | "
                     f"{r['note']} |")
    lines += ["", "## Final architecture", "", "```", *summary["block_strings"], "```", ""]
    lines += _deploy_lines(summary)
    stages = summary.get("stages", {})
    if stages:
        lines += ["## Stages", "", "| stage | seconds | note |", "| --- | ---: | --- |"]
        lines += [f"| {k} | {fmt(v.get('seconds'), 1)} | {v.get('note', '')} |" for k, v in stages.items()]
        lines.append("")
    lines += ["## Plots", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots if p is not None]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
