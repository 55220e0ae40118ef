"""The zoo's MobileNetV3s in LiteRT and in int8: export check, latency per runtime, int8 speed-up
and int8 accuracy drop.

    .venv/bin/python experiments/benchmarks/tflite_int8.py [--networks mobilenetv3_large,...]
        [--budget default] [--threads 1] [--out experiments/runs/tflite_int8]

For each network at its deployed 224x224 input (random weights, as `final.onnx`): the TFLite file's
max |LiteRT - torch|; fp32 against int8 for ONNX Runtime (QDQ) and for LiteRT (XNNPACK), each pair
timed interleaved (`nas.pipeline.deploy.int8_latency`: 8 rounds x 5 runs, rounds in a random
order), with the per-round ratio's p10-p90; and the LiteRT int8 graph's XNNPACK partitions (1: XNNPACK
runs the whole graph) and its ops. Then each network is trained with the budget's final recipe (seed 0) on the
proxy task and `int8_check` scores fp32 and both int8 models on its held-out images. Trained
results are appended to `results.jsonl` in `--out`, so an interrupted run resumes without training
again; the latencies are measured afresh each run (run it on a quiet machine).
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nas.accuracy.proxy_config import DataConfig  # noqa: E402
from nas.accuracy.proxy_data import load_data  # noqa: E402
from nas.accuracy.short_training import Trainer  # noqa: E402
from nas.budgets import get_budget  # noqa: E402
from nas.core.spec_file import load_spec  # noqa: E402
from nas.export.onnx import export_onnx, model_for_export  # noqa: E402
from nas.export.quantize import int8_check, quantize_onnx, random_calibration, tflite_int8  # noqa: E402
from nas.export.tflite import make_interpreter, max_abs_diff, to_tflite  # noqa: E402
from nas.pipeline.deploy import CALIBRATION_INPUTS, int8_latency  # noqa: E402
from nas.runtime.jsonl import JsonlWriter, read_jsonl  # noqa: E402
from nas.runtime.session import set_threads  # noqa: E402

NETWORKS = "mobilenetv3_large,mobilenetv3_small,mobilenetv3_large_minimalistic,mobilenetv3_small_minimalistic"


def graph_ops(tflite: bytes) -> tuple[int, str]:
    """(XNNPACK partitions, the graph's other ops by count: a graph that XNNPACK takes whole is one partition)."""
    ops = collections.Counter(o["op_name"] for o in make_interpreter(tflite)._get_ops_details())
    partitions = ops.pop("DELEGATE", 0)
    return partitions, ", ".join(f"{n} {k}" for k, n in ops.most_common()) or "none"


def deployed(name: str, threads: int) -> dict:
    spec = load_spec(name)
    model = model_for_export(spec)
    shape = (1, 3, spec.resolution, spec.resolution)
    calibration = random_calibration(shape, CALIBRATION_INPUTS)
    start = time.perf_counter()
    onnx = export_onnx(model, shape)
    fp32_tfl = to_tflite(model, shape)
    int8_onnx = quantize_onnx(onnx, calibration)
    int8_tfl = tflite_int8(model, shape, calibration)
    convert_s = time.perf_counter() - start
    partitions, rest = graph_ops(int8_tfl)
    return {"name": name, "tflite_max_abs_diff": max_abs_diff(model, fp32_tfl, shape), "convert_s": convert_s,
            "onnxruntime": int8_latency(onnx, int8_onnx, "onnxruntime", threads),
            "litert": int8_latency(fp32_tfl, int8_tfl, "litert", threads),
            "partitions": partitions, "outside": rest}


def trained(name: str, budget, data, done: dict, writer: JsonlWriter) -> dict:
    if name in done:
        return done[name]
    trainer = Trainer(load_spec(name), data, budget.accuracy.final, seed=0)
    result = trainer.run()
    check = int8_check(trainer.model, data, time_it=False)
    row = {"name": name, "seconds": round(result.seconds, 1), **check}
    writer.write(row)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--networks", default=NETWORKS)
    p.add_argument("--budget", default="default")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "experiments/runs/tflite_int8"))
    args = p.parse_args()
    set_threads(args.threads)
    names = args.networks.split(",")
    budget = get_budget(args.budget)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timed = [deployed(n, args.threads) for n in names]
    final = budget.accuracy.final
    data = load_data(DataConfig(), final.train_images, final.val_images)
    done = {r["name"]: r for r in read_jsonl(out / "results.jsonl")}
    with JsonlWriter(out / "results.jsonl") as writer:
        scored = [trained(n, budget, data, done, writer) for n in names]

    print(f"Deployed input 224x224, batch 1, {args.threads} thread(s); fp32 and int8 timed interleaved "
          f"(median ms; speed-up = the ratio of the medians, fp32 / int8; in brackets the p10-p90 of the per-round ratios, which need not contain it)\n")
    print("| network | LiteRT vs torch | ORT fp32 | ORT int8 | ORT speed-up | LiteRT fp32 | LiteRT int8 | "
          "LiteRT speed-up | XNNPACK partitions (int8) | ops of the int8 graph |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in timed:
        o, t = r["onnxruntime"], r["litert"]
        print(f"| {r['name']} | {r['tflite_max_abs_diff']:.1e} | {o['fp32_ms']:.2f} | {o['int8_ms']:.2f} | "
              f"x{o['speedup']:.2f} ({o['speedup_p10']:.2f}-{o['speedup_p90']:.2f}) | {t['fp32_ms']:.2f} | "
              f"{t['int8_ms']:.2f} | x{t['speedup']:.2f} ({t['speedup_p10']:.2f}-{t['speedup_p90']:.2f}) | "
              f"{r['partitions']} | {r['outside']} |")
    print(f"\nint8 top-1 on the proxy task (the {args.budget} budget's final recipe, seed 0; "
          f"{scored[0]['val_images']} held-out images, {scored[0]['calibration_images']} calibration images; "
          "drops paired on the same images, one trained seed each)\n")
    print("| network | fp32 | int8 ONNX Runtime | drop (points) | int8 LiteRT | drop (points) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in scored:
        print(f"| {r['name']} | {r['fp32_top1']:.4f} | {r['onnx_int8_top1']:.4f} | {r['onnx_int8_drop_points']:+.2f} | "
              f"{r['tflite_int8_top1']:.4f} | {r['tflite_int8_drop_points']:+.2f} |")
    print(f"\n({time.perf_counter() - started:.0f} s this run; trained results: {out / 'results.jsonl'})")


if __name__ == "__main__":
    main()
