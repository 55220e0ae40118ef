"""The final network beside the published MobileNetV3s, and the latency points the report plots."""
from __future__ import annotations

from nas.core.spec import ArchSpec, load_spec
from nas.budgets import Budget
from nas.runtime.paths import REFERENCE_DIR

FAMILY_REFERENCES = {"large": "mobilenetv3_large", "small": "mobilenetv3_small"}


def comparison_rows(final: ArchSpec, device, budget: Budget, data, seed: int) -> list[dict]:
    """The final network and the published MobileNetV3s on the same device, each trained from
    scratch with the same proxy recipe, so that their accuracies compare."""
    from nas.core.counts import count_macs, count_params
    from nas.accuracy.proxy import make_proxy

    trainer = make_proxy("train", budget.name, data=data, seed=seed)
    rows = []
    specs = [("final", final)] + [(name, load_spec(REFERENCE_DIR / f"{name}.yaml"))
                                  for name in FAMILY_REFERENCES.values()]
    for name, spec in specs:
        result = trainer.evaluate(spec)
        rows.append({"name": name, "latency_ms": round(device.predict(spec).ms, 3),
                     "accuracy": None if result.get("failed") else result.get("accuracy"),
                     "params": count_params(spec), "macs": count_macs(spec)})
    return rows


def latency_points(device_name: str, device, final: ArchSpec, measured: float, predicted: float):
    """Predicted vs measured: on the host, the final network; on a calibrated phone, its calibration set."""
    if device_name == "host":
        return [{"name": "final", "predicted_ms": predicted, "measured_ms": measured}], "host: predicted vs measured"
    info = getattr(device, "info", None) or {}
    points = []
    for row in info.get("networks", []) if isinstance(info, dict) else []:
        if {"fitted_ms", "published_ms"} <= set(row):
            points.append({"name": row.get("network", row.get("name", "")), "predicted_ms": row["fitted_ms"],
                           "measured_ms": row["published_ms"]})
    return points, f"{device_name}: model vs published end-to-end latency"
