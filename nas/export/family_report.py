"""A family's report: report.md with a section per target, and family.png, the family against the
width-scaled MobileNetV3 curve; from the members' results (what each run prints with --json)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.export.report import accuracy_cell, difference_cell, fmt
from nas.runtime.files import atomic_write_text
from nas.runtime.plots import pyplot, save_figure


def _row(member: dict, kind: str) -> dict | None:
    return next((r for r in member["comparison"] if r["kind"] == kind), None)


def plot_family(members: list[dict], device: str, out: Path) -> Path:
    """Top-1 (final recipe, mean ± sd) against predicted latency: the family's final networks, and
    per space the width-scaled MobileNetV3 trained at the same targets (its curve)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    members = sorted(members, key=lambda m: m["target_ms"])
    finals = [_row(m, "final") for m in members]
    ax.errorbar([r["latency_ms"] for r in finals], [r["accuracy_mean"] for r in finals],
                yerr=[r["accuracy_sd"] or 0.0 for r in finals], fmt="o-", capsize=4, color="tab:red",
                label="the family (search + NetAdapt)")
    for space in dict.fromkeys(m["space"] for m in members):
        rows = [r for m in members if m["space"] == space and (r := _row(m, "width_scaled"))]
        if rows:
            ax.errorbar([r["latency_ms"] for r in rows], [r["accuracy_mean"] for r in rows],
                        yerr=[r["accuracy_sd"] or 0.0 for r in rows], fmt="s--", capsize=4, alpha=0.8,
                        label=f"{rows[0]['name'].split('_x')[0]} scaled in width")
    for m in members:
        ax.axvline(m["target_ms"], color="k", ls=":", lw=0.8)
    seeds = min(r["seeds"] for r in finals)
    ax.set_xlabel(f"predicted latency on {device} (ms); dotted: the targets")
    ax.set_ylabel(f"top-1, final recipe (mean ± sd, {seeds}+ seeds)")
    ax.set_title("A family of targets against the width-scaled MobileNetV3")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, out / "family.png")


def write_family_report(run_dir: Path, device: str, members: list[dict], supernets: list[dict]) -> tuple[Path, Path]:
    """report.md and family.png in `run_dir`; returns their paths."""
    plot = plot_family(members, device, run_dir)
    lines = [f"# Family report: {run_dir.name}", "",
             f"{len(members)} targets on **{device}**, each searched, brought to its target by NetAdapt and "
             "trained from scratch with the final recipe beside its equal-latency baselines (seeds paired).", "",
             "| target ms | space | predicted ms | top-1 (mean ± sd) | width-scaled top-1 | final − width-scaled, "
             "points [95% CI] | params | MACs | run |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for m in members:
        final, scaled = _row(m, "final"), _row(m, "width_scaled")
        run = Path(m["run_dir"]).name
        lines.append(f"| {m['target_ms']:g} | {m['space']} | {fmt(m['predicted_ms'])} | {accuracy_cell(final)} "
                     f"({final['seeds']} seeds) | {accuracy_cell(scaled) if scaled else '–'} | "
                     f"{difference_cell(scaled) if scaled else '–'} | {fmt(m['params'])} | {m['macs'] / 1e6:.1f}M | "
                     f"[{run}]({run}/report.md) |")
    lines += ["", f"![family]({plot.name})", ""]
    if supernets:
        lines += ["## Supernets", "", "One weight-sharing supernet per space, trained once and shared by its targets.",
                  "", "| space | targets (ms) | epochs | images | largest / smallest path top-1 | seconds |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {s['space']} | {', '.join(f'{t:g}' for t in s['targets'])} | {s['epochs']} | "
                  f"{fmt(s['train_images'])} | {s['largest_accuracy']:.3f} / {s['smallest_accuracy']:.3f} | "
                  f"{fmt(s.get('wall_s'), 0)} |" for s in supernets]
        lines.append("")
    for m in members:
        lines += section(m)
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path, plot


def section(m: dict[str, Any]) -> list[str]:
    """One target: its verdict, its comparison and the files to ship."""
    run = Path(m["run_dir"]).name
    out = [f"## {m['target_ms']:g} ms", "", f"**Verdict:** {m['verdict']}.", "",
           f"Predicted {fmt(m['predicted_ms'])} ms on {m['device']} "
           f"({100 * (m['predicted_ms'] / m['target_ms'] - 1):+.1f}% from target), measured on this host "
           f"{fmt(m['measured_host_ms'], 3)} ms (ONNX Runtime, 1 thread); {m['samples']} samples, "
           f"{m['netadapt_iterations']} NetAdapt iterations, {fmt(m['wall_s'], 0)} s.", "",
           "| network | kind | predicted ms | top-1 (mean ± sd) | final − this, points [95% CI] |",
           "| --- | --- | ---: | ---: | ---: |"]
    out += [f"| {r['name']} | {r['kind']} | {fmt(r['latency_ms'])} | {accuracy_cell(r)} | {difference_cell(r)} |"
            for r in m["comparison"]]
    out += ["", f"- spec: `{run}/final.yaml`; ONNX: `{run}/final.onnx`" +
            (f"; TFLite: `{run}/{Path(m['tflite']).name}`" if m.get("tflite") else ""),
            f"- the run's own report: [{run}/report.md]({run}/report.md)",
            f"- train it: `{m['train_command']}`", ""]
    return out
