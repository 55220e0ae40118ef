#!/usr/bin/env python3
"""Time the ONNX ops of a manifest on this device. Needs only onnxruntime and numpy.

Copied next to the exported ops by `python -m nas.latency export-ops`; run it on the phone or
board (Python + ONNX Runtime), then bring timings.json back and run
`python -m nas.latency import --device NAME --timings timings.json`.

    python3 time_ops.py [--threads 1] [--rounds 6] [--runs 6] [--out timings.json]
"""
import argparse
import json
import os
import platform
import time

import numpy as np
import onnxruntime as ort


def session(path, threads, provider):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=opts, providers=[provider])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=here, help="folder holding manifest.json and the .onnx files")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds over all ops")
    p.add_argument("--runs", type=int, default=6, help="timed runs per op per round")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--provider", default="CPUExecutionProvider")
    p.add_argument("--name", default=platform.node(), help="device name to record")
    p.add_argument("--out", default="timings.json")
    args = p.parse_args()
    with open(os.path.join(args.dir, "manifest.json")) as f:
        manifest = json.load(f)
    entries = manifest["entries"]
    sessions = [session(os.path.join(args.dir, e["file"]), args.threads, args.provider) for e in entries]
    rng = np.random.default_rng(0)
    feeds = [{s.get_inputs()[0].name: rng.standard_normal(e["input_shape"]).astype(np.float32)}
             for s, e in zip(sessions, entries)]
    for s, f in zip(sessions, feeds):
        for _ in range(args.warmup):
            s.run(None, f)
    samples = [[] for _ in entries]
    for r in range(args.rounds):
        for i in rng.permutation(len(entries)):
            sessions[i].run(None, feeds[i])  # re-warm after the other ops ran
            for _ in range(args.runs):
                start = time.perf_counter()
                sessions[i].run(None, feeds[i])
                samples[i].append((time.perf_counter() - start) * 1e3)
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    result = {
        "device": {"name": args.name, "runtime": f"onnxruntime {ort.__version__}", "provider": args.provider,
                   "threads": args.threads, "cpu": platform.processor() or platform.machine(),
                   "cores": os.cpu_count(), "batch": 1},
        "unit": "ms",
        "entries": [],
    }
    for e, t in zip(entries, samples):
        p10, med, p90 = np.percentile(t, [10, 50, 90])
        result["entries"].append({**{k: e[k] for k in ("kind", "key") if k in e}, "ops": e.get("ops"),
                                  "median": float(med), "p10": float(p10), "p90": float(p90), "n": len(t)})
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(entries)} entries")


if __name__ == "__main__":
    main()
