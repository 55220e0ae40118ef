"""The compare stage for the ImageNet proxies: the final network beside others' networks on ground truth.

Nothing is trained: the final network's top-1 is the proxy's prediction, exact for that model (no
seed noise), and its baselines are the networks others found in the same space:
- `ofa_mobilenetv3`: the OFA network specialised for the device's nearest latency (its published
  top-1 after fine-tuning), and, where it differs, the nearest one this project can score like for
  like (a w1.2 network inside the device's tables: predicted top-1 and latency by the same models);
- `accel_mnasnet`: the best Accel-NASBench record that meets the target on the device (its
  measured top-1, and the surrogate's prediction for a like-for-like difference).
Rows carry `accuracy_label`, so no output calls a prediction a measurement.
"""
from __future__ import annotations

import math
from typing import Any

from nas.core.counts import count_macs, count_params
from nas.core.spec import ArchSpec
from nas.groundtruth.accel import spec_of
from nas.groundtruth.ofa import specialized_networks
from nas.groundtruth.records import accel_records


def _row(name: str, kind: str, spec: ArchSpec | None, latency: float | None, accuracy: float | None, label: str,
         target: float, note: str) -> dict[str, Any]:
    return {"name": name, "kind": kind, "latency_ms": None if latency is None else round(latency, 3),
            "latency_vs_target_pct": None if latency is None else round(100 * (latency / target - 1), 2),
            "accuracy_mean": accuracy, "accuracy_sd": None, "seeds": 1, "accuracies": [accuracy],
            "failed_seeds": 0, "accuracy_label": label,
            "params": count_params(spec) if spec is not None else None,
            "macs": count_macs(spec) if spec is not None else None,
            "arch": spec.to_string() if spec is not None else None, "note": note}


def _ofa_rows(device_name: str, device, proxy, target: float) -> list[dict[str, Any]]:
    nets = [(n, s) for n, s in specialized_networks() if n["device"] == device_name]
    if not nets:
        return []
    rows = []
    nearest = min(nets, key=lambda ns: abs(math.log(ns[0]["constraint"] / target)))
    scorable = [(n, s) for n, s in nets if s is not None and s.resolution in getattr(device, "resolutions", ())]
    like = min(scorable, key=lambda ns: abs(math.log(device.predict(ns[1]).ms / target))) if scorable else None
    for n, s in [nearest] + ([like] if like is not None and like is not nearest else []):
        published = n["top1_imagenet_val"] / 100
        if s is not None and s.resolution in getattr(device, "resolutions", ()):
            ms, acc = device.predict(s).ms, proxy.evaluate(s)["accuracy"]
            note = (f"OFA's network for {n['constraint']:g} ms on {n['device']}; published top-1 {published:.3f} after "
                    f"{n['finetune_epochs']} fine-tuning epochs; latency and top-1 here from the same models as the final")
            rows.append(_row(n["name"], "ofa_specialized", s, ms, acc, proxy.label, target, note))
        else:
            note = (f"OFA's network for {n['constraint']:g} ms on {n['device']} (w{n['width_mult']:g}, r={n['r']}: "
                    f"outside this w1.2 space's models); latency = its constraint; top-1 published after "
                    f"{n['finetune_epochs']} fine-tuning epochs")
            rows.append(_row(n["name"], "ofa_specialized", s, n["constraint"], published,
                             "published ImageNet top-1 (OFA, measured after fine-tuning)", target, note))
    return rows


def _accel_rows(device, proxy, target: float) -> list[dict[str, Any]]:
    records = accel_records()
    specs = [spec_of(r["architecture"], name=f"accel-{i}") for i, r in enumerate(records)]
    ms = device.predict_many(specs)[:, 0]
    meeting = [i for i in range(len(records)) if ms[i] <= target]
    if not meeting:
        return []
    best = max(meeting, key=lambda i: records[i]["metrics"]["val_top1"])
    spec, measured = specs[best], records[best]["metrics"]["val_top1"] / 100
    predicted = proxy.evaluate(spec)["accuracy"]
    note = (f"the best of Accel-NASBench's {len(records):,} trained networks that meets the target "
            f"({len(meeting):,} do); measured top-1 {measured:.4f} by its authors (one seed)")
    return [_row(spec.name, "best_known", spec, float(ms[best]), predicted, proxy.label, target, note)]


def groundtruth_comparison(final: ArchSpec, device_name: str, device, proxy, target: float) -> dict[str, Any]:
    """rows (final first) and a one-sentence verdict, for a run whose proxy predicts ImageNet top-1."""
    final_acc = proxy.evaluate(final)["accuracy"]
    rows = [_row(final.name, "final", final, device.predict(final).ms, final_acc, proxy.label, target, "")]
    rows += _ofa_rows(device_name, device, proxy, target) if proxy.space == "ofa_mobilenetv3" else \
        _accel_rows(device, proxy, target)
    clauses = []
    for r in rows[1:]:
        diff = final_acc - r["accuracy_mean"]
        r["difference"] = {"mean": diff, "ci_low": None, "ci_high": None}
        same = r["accuracy_label"] == proxy.label
        r["judgement"] = "same model, no seed noise" if same else "different sources: not like for like"
        clauses.append(f"{100 * diff:+.2f} points against {r['name']} ({r['latency_ms']:.3g} ms, {r['accuracy_label']})")
    verdict = (f"Final network {100 * final_acc:.2f}% {proxy.label}; " + "; ".join(clauses)) if clauses else \
        f"Final network {100 * final_acc:.2f}% {proxy.label}; no published network of this space for {device_name}"
    return {"rows": rows, "verdict": verdict, "seeds": [], "accuracy_source": proxy.source}
