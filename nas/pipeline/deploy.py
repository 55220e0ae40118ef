"""The deploy stage: what the search hands to a phone, beside final.onnx.

- `final.tflite`: the final network as LiteRT runs it (channels-last input; random weights, as in
  final.onnx: the architecture, for timing and for `nas.export --weights`), checked against torch.
- int8: its speed-up over fp32 at the deployed input with ONNX Runtime (QDQ) and LiteRT, timed
  interleaved on this host; and its accuracy drop on the proxy task, on the final network the
  compare stage trained (first seed), quantized with proxy-task training images and scored on the
  held-out ones.

The slow conversions (about 20 s each for a 50 ms network) run beside the compare stage's last
training (`convert_job`); this stage converts only what is missing, then checks, times and scores.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from nas.accuracy.proxy import make_proxy
from nas.budgets import get_budget
from nas.core.spec import ArchSpec, spec_from_dict
from nas.pipeline.compare import final_weights_path, seeds_of
from nas.pipeline.results import DeployStage
from nas.runtime.files import atomic_write_bytes, load_state
from nas.runtime.session import set_threads

log = logging.getLogger(__name__)

CALIBRATION_INPUTS = 16  # random inputs: latency does not depend on the values
# held-out images the int8 check scores: the drop is paired image by image, so 2,000 give it an SE
# of about 0.3 points at a few percent of changed answers, in a third of the time of 5,000
CHECK_IMAGES = 2000


def convert_job(ctx) -> tuple | None:
    """(function, args) of the conversions, for the compare stage's worker pool (plain, picklable
    data); None when the run deploys nothing (`--deploy none`). Queued after every training, it
    finds the final network's first-seed weights already written (else the deploy stage quantizes
    them itself)."""
    if not ctx.deploy:
        return None
    return convert_all, (ctx.final.to_dict(), str(ctx.run_dir), list(ctx.deploy), *_trained_args(ctx))


def _trained_args(ctx) -> tuple:
    weights = final_weights_path(ctx.run_dir, seeds_of(ctx.budget, ctx.config.seed))
    return str(weights), ctx.prepared.data, ctx.budget.name


def convert_all(spec: dict, run_dir: str, parts: list[str], weights: str, data_config, budget: str) -> None:
    spec = spec_from_dict(spec, source="deploy")
    convert_deployment(spec, Path(run_dir) / "deploy", parts)
    if "int8" in parts:
        trained_int8(spec, Path(run_dir), Path(weights), data_config, budget)


def trained_int8(spec: ArchSpec, run_dir: Path, weights: Path, data_config, budget: str) -> dict[str, bytes] | None:
    """int8 models of the compare stage's trained final network (deploy/trained-int8.onnx, .tflite),
    made once; None without its weights."""
    from nas.export.quantize import int8_models  # deferred: loads numpy
    from nas.export.tflite import tflite_available  # deferred: loads torch

    if not weights.exists():
        return None
    out = run_dir / "deploy"
    paths = {"onnx": out / "trained-int8.onnx", "tflite": out / "trained-int8.tflite"}
    wanted = ["onnx", "tflite"] if tflite_available() else ["onnx"]
    if not all(paths[k].exists() for k in wanted):
        set_threads(1)
        model, data = trained_final(spec, data_config, budget, weights)
        for k, made in int8_models(model, data).items():
            atomic_write_bytes(paths[k], made)
    return {k: paths[k].read_bytes() for k in wanted}


def convert_deployment(spec: dict | ArchSpec, out: str | Path, parts=("tflite", "int8")) -> dict[str, float]:
    """Under `out`, for `parts`: int8 -> int8.onnx; with the 'tflite' extra, tflite -> fp32.tflite and
    both -> int8.tflite (each written whole, and skipped when already there). The seconds each took."""
    from nas.export.onnx import export_onnx, model_for_export  # deferred: loads torch
    from nas.export.quantize import quantize_onnx, random_calibration, tflite_int8  # deferred: loads numpy
    from nas.export.tflite import tflite_available, to_tflite  # deferred: loads torch

    set_threads(1)
    spec = spec if isinstance(spec, ArchSpec) else spec_from_dict(spec, source="deploy")
    out = Path(out)
    model = model_for_export(spec)  # seed 0: the weights of final.onnx
    shape = (1, 3, spec.resolution, spec.resolution)
    calibration = random_calibration(shape, CALIBRATION_INPUTS)
    makers = {}
    if "int8" in parts:
        makers["int8.onnx"] = lambda: quantize_onnx(export_onnx(model, shape), calibration)
    if "tflite" in parts and tflite_available():
        makers["fp32.tflite"] = lambda: to_tflite(model, shape)
        if "int8" in parts:
            makers["int8.tflite"] = lambda: tflite_int8(model, shape, calibration)
    seconds = {}
    for name, make in makers.items():
        if not (out / name).exists():
            start = time.perf_counter()
            atomic_write_bytes(out / name, make())
            seconds[name] = round(time.perf_counter() - start, 1)
    return seconds


def int8_latency(fp32: bytes, int8: bytes, runtime: str, threads: int = 1) -> dict[str, Any]:
    """fp32 and int8 medians, timed interleaved (rounds alternate in a random order), and the speed-up."""
    import numpy as np  # deferred: numpy takes ~0.2 s to load

    from nas.latency.backend import make_backend  # deferred: loads torch
    from nas.latency.build import MODEL_SCHEDULE, time_interleaved  # deferred: loads torch

    runs = time_interleaved([fp32, int8], threads, MODEL_SCHEDULE, backend=make_backend(runtime))
    fp32_ms, int8_ms = (float(np.median(r)) for r in runs)
    # per round, so that the spread says how steady the ratio was on a noisy machine
    ratios = np.median(runs[0], axis=1) / np.median(runs[1], axis=1)
    return {"fp32_ms": round(fp32_ms, 4), "int8_ms": round(int8_ms, 4), "speedup": round(fp32_ms / int8_ms, 3),
            "speedup_p10": round(float(np.percentile(ratios, 10)), 3),
            "speedup_p90": round(float(np.percentile(ratios, 90)), 3), "timed_runs": int(runs[0].size)}


def trained_final(spec: ArchSpec, data_config, budget: str, weights: Path):
    """The compare stage's trained final network (as trained: the data's classes and resolution)
    and its proxy data (the budget's final recipe's images)."""
    from nas.accuracy.short_training import adapt_spec  # deferred: loads torch
    from nas.core.model import build_model  # deferred: loads torch

    b = get_budget(budget)
    proxy = make_proxy("train", b, data=data_config, seed=0, train=b.accuracy.final, threads=1)
    data = proxy.data()
    model = build_model(adapt_spec(spec, data.num_classes, data.resolution, proxy.config.data.stem_stride))
    model.load_state_dict(load_state(weights))
    return model.eval(), data


def run_deploy(ctx) -> DeployStage:
    from nas.export.onnx import model_for_export  # deferred: loads torch
    from nas.export.quantize import int8_check  # deferred: loads numpy
    from nas.export.tflite import INSTALL_HINT, check_tflite, tflite_available  # deferred: loads torch
    run_dir, spec, parts = ctx.run_dir, ctx.final, ctx.deploy
    result: dict[str, Any] = {"tflite": None, "int8": None}
    if not parts:
        result["tflite_note"] = "not made (--deploy none)"
        return DeployStage(**result)
    out = run_dir / "deploy"
    converted = convert_deployment(spec, out, parts)  # what the compare stage did not (resumed, one CPU)
    if converted:
        log.info("deploy: converted %s here", ", ".join(f"{k} ({v:.0f} s)" for k, v in converted.items()))
    shape = (1, 3, spec.resolution, spec.resolution)
    tflite = "tflite" in parts and tflite_available()
    if tflite:
        tfl = (out / "fp32.tflite").read_bytes()
        # a failed check raises before final.tflite is written; the stage stays undone
        checked = check_tflite(model_for_export(spec), tfl, shape, str(run_dir / "final.tflite"), time_it=False)
        atomic_write_bytes(run_dir / "final.tflite", tfl)
        result.update(tflite=str(run_dir / "final.tflite"), tflite_max_abs_diff=checked["max_abs_diff"])
    else:
        result["tflite_note"] = f"no final.tflite: {INSTALL_HINT}" if "tflite" in parts else "not made (--deploy)"
    if "int8" not in parts:
        return DeployStage(**result)
    result["int8"] = {"onnxruntime": int8_latency((run_dir / "final.onnx").read_bytes(),
                                                  (out / "int8.onnx").read_bytes(), "onnxruntime")}
    if tflite:
        result["int8"]["litert"] = int8_latency(tfl, (out / "int8.tflite").read_bytes(), "litert")
    weights, data_config, budget = _trained_args(ctx)
    weights = Path(weights)
    if weights.exists():
        # made beside the compare stage's last training, unless the run was resumed
        models = trained_int8(spec, run_dir, weights, data_config, budget)
        model, data = trained_final(spec, data_config, budget, weights)
        result["int8"]["accuracy"] = int8_check(model, data, time_it=False, models=models, val_images=CHECK_IMAGES)
    else:  # its training diverged, or the run's compare stage predates kept weights
        result["int8"]["accuracy"] = None
        result["int8"]["note"] = f"no trained weights at {weights}: accuracy not checked"
    return DeployStage(**result)
