"""The `calibrate` subcommand: fit a device's latency model to a handful of end-to-end timings.

    python -m nas.latency calibrate --device NAME --measurements FILE [--model M] [--out PATH] [--json]

Reads the measurement file (nas.latency.measurements), turns each network into analytic features
(nas.latency.features), fits every candidate model and keeps the one with the lowest
leave-one-out error (nas.latency.fit), and writes the calibrated device (nas.latency.calibrated).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from nas.latency.calibrated import calibrated_yaml, candidate_row, network_rows
from nas.latency.fit import MODELS, calibrate
from nas.latency.measurements import load_measurements
from nas.runtime.cli import emit
from nas.runtime.files import atomic_write_text
from nas.runtime.paths import DATA_ROOT, ROOT

# The --help description: one line on what the command does.
DESCRIPTION = "Calibrated devices: a per-op latency model fitted to a handful of end-to-end timings."


def _display_path(path: str) -> str:
    """Relative to the package data or the repository where possible, so a shipped file does not
    record one machine's paths."""
    for root in (DATA_ROOT, ROOT):
        try:
            return str(Path(path).resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def check_device_name(name: str) -> str:
    if not name or any(ch in name for ch in "/\\") or name.startswith("."):
        raise argparse.ArgumentTypeError(f"a device name is a plain file stem, got {name!r}")
    return name


def register(subparsers) -> argparse.ArgumentParser:
    """Add `calibrate` to the `python -m nas.latency` subcommands."""
    p = subparsers.add_parser("calibrate", help="fit a device's latency model to end-to-end timings",
                              description=DESCRIPTION)
    p.add_argument("--device", required=True, type=check_device_name, help="device name (latency_tables/NAME.yaml)")
    p.add_argument("--measurements", required=True, help="YAML or CSV file of spec path, ms")
    p.add_argument("--model", default="auto", choices=["auto", *MODELS],
                   help="latency model; auto picks the lowest leave-one-out error (default)")
    p.add_argument("--out", help="output file (default latency_tables/NAME.yaml)")
    p.add_argument("--force", action="store_true", help="write even over, or in front of, a shipped device table")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run_calibrate)
    return p


def run_calibrate(args: argparse.Namespace) -> int:
    from nas.latency.devices import table_out  # deferred: loads torch

    out = table_out(args.device, args.out, args.force)  # checked before any work
    device_info, ms_list = load_measurements(args.measurements)
    fit, fits = calibrate([m.spec for m in ms_list], [m.ms for m in ms_list], args.model, args.measurements)
    labels = [m.label for m in ms_list]
    text = calibrated_yaml(args.device, device_info, fit, fits, labels, [m.spec_path for m in ms_list],
                           _display_path(args.measurements))
    atomic_write_text(out, text)  # a path it cannot write is a UserError there
    q10, q90 = fit.spread()
    result = {
        "device": args.device, "model": fit.model, "out": str(out),
        "coefficients": {f: float(c) for f, c in zip(fit.features, fit.coef)},
        "loo_median_abs_err_pct": round(fit.loo_median_pct, 3),
        "loo_max_abs_err_pct": round(fit.loo_max_pct, 3),
        "spread": {"q10": q10, "q90": q90},
        "candidates": [candidate_row(f) for f in fits],
        "networks": network_rows(fit, labels, [m.spec_path for m in ms_list]),
    }
    emit(result, args.json, _human)
    return 0


def _human(r: dict) -> str:
    coef = ", ".join(f"{k} {v:.4g}" for k, v in r["coefficients"].items())
    lines = [f"{r['device']}: model {r['model']}, ms per unit: {coef}",
             f"{'network':34s} {'published':>9s} {'fitted':>8s} {'LOO':>8s} {'LOO err':>8s}"]
    for n in r["networks"]:
        lines.append(f"{n['network']:34s} {n['published_ms']:9.2f} {n['fitted_ms']:8.2f} {n['loo_ms']:8.2f} "
                     f"{n['loo_err_pct']:+7.1f}%")
    lines.append(f"leave-one-out error: median {r['loo_median_abs_err_pct']:.1f}%, max {r['loo_max_abs_err_pct']:.1f}%")
    if len(r["candidates"]) > 1:
        lines.append(f"candidate models, leave-one-out |error| %:  {'median':>6s} {'max':>6s} {'rms':>6s}")
        for c in r["candidates"]:
            mark = "*" if c["model"] == r["model"] else " "
            lines.append(f"  {mark} {c['model']:12s} {', '.join(c['features']):52s} {c['loo_median_abs_err_pct']:6.1f} "
                         f"{c['loo_max_abs_err_pct']:6.1f} {c['loo_rms_err_pct']:6.1f}")
    lines.append(f"wrote {r['out']}")
    return "\n".join(lines)

