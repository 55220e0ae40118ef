#!/usr/bin/env python3
"""Time the TFLite ops of a manifest on a phone (adb + benchmark_model) or a board (LiteRT interpreter).

Copied next to the exported ops by `python -m nas.latency export-ops --format tflite`. Two modes:

    python3 time_tflite.py adb [--serial S] [--benchmark-binary /data/local/tmp/benchmark_model]
                               [--push-benchmark LOCAL_BINARY] [--threads 1] [--rounds 6] [--runs 6]
    python3 time_tflite.py interpreter [--threads 1] [--rounds 6] [--runs 6]

`adb` runs on the computer the phone is plugged into and needs only the Python standard library: it
pushes every model to the phone and runs TFLite's benchmark_model on each, one invocation per model
per round, visiting the models in a fresh random order each round. `interpreter` runs on the device
itself (Python, numpy and ai-edge-litert or tflite-runtime). Both write timings.json; bring it back and
run `python -m nas.latency import --device NAME --timings timings.json`.
"""
import argparse
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from importlib.metadata import version

REMOTE_DIR = "/data/local/tmp/nas_ops"
BENCHMARK = "/data/local/tmp/benchmark_model"

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_SUMMARY = re.compile(r"Inference timings in us: Init: " + _NUMBER + r", First inference: " + _NUMBER +
                      r", Warmup \(avg\): " + _NUMBER + r", Inference \(avg\): " + _NUMBER)
_STAT = re.compile(r"\b(count|first|curr|min|max|avg|std|p5|median|p95)=" + _NUMBER)


def parse_benchmark_output(text):
    """benchmark_model's figures, in microseconds: init_us, first_us, warmup_avg_us, avg_us (the
    "Inference timings in us" line), and from the last run-statistics line (the timed runs) count,
    min, max, avg, std and, where the binary prints them, p5, median and p95. None if the run
    printed no summary (it failed)."""
    summary = None
    stats = []
    for line in text.splitlines():
        m = _SUMMARY.search(line)
        if m:
            summary = [float(v) for v in m.groups()]
            continue
        if re.search(r"\bcount=", line):
            stats.append({k: float(v) for k, v in _STAT.findall(line)})
    if summary is None:
        return None
    result = dict(zip(("init_us", "first_us", "warmup_avg_us", "avg_us"), summary))
    if stats:  # the last statistics line before the summary is the timed runs (the first, warm-up)
        run = stats[-1]
        if "avg" not in run and "curr" in run:  # "count=N curr=X(all same)": every run took X
            run = {**run, "avg": run["curr"], "min": run["curr"], "max": run["curr"], "std": 0.0}
        result.update(run)
    return result


def percentile(values, q):
    """numpy.percentile's default (linear) interpolation, without numpy."""
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def summarize(samples):
    return {"median": percentile(samples, 50), "p10": percentile(samples, 10), "p90": percentile(samples, 90)}


def load_manifest(folder):
    path = os.path.join(folder, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:
        sys.exit(f"{path}: cannot read the manifest: {err}")
    if manifest.get("format") != "tflite":
        sys.exit(f"{path}: format: expected a TFLite bundle (export-ops --format tflite), "
                 f"got {manifest.get('format')!r}")
    return manifest


def write_timings(out, device, manifest, per_entry):
    result = {"device": {**device, "precision": manifest.get("precision", "fp32"), "format": "tflite", "batch": 1},
              "unit": "ms", "entries": []}
    for e, (samples, n) in zip(manifest["entries"], per_entry):
        result["entries"].append({**{k: e[k] for k in ("kind", "key") if k in e}, "ops": e.get("ops"),
                                  **summarize(samples), "n": n})
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out)  # whole or not at all
    print(f"wrote {out}: {len(per_entry)} entries")


# ---- adb + benchmark_model -----------------------------------------------------------------------
class Adb:
    def __init__(self, exe, serial):
        found = shutil.which(exe)
        if not found:
            sys.exit(f"{exe}: not found on PATH (install Android platform-tools, or give --adb PATH)")
        self.base = [found] + (["-s", serial] if serial else [])

    def __call__(self, *args, check=True):
        proc = subprocess.run(self.base + list(args), capture_output=True, text=True)
        if check and proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            sys.exit(f"adb {' '.join(args)[:120]}: exit {proc.returncode}: {' | '.join(tail)}")
        return proc

    def shell(self, command, check=True):
        return self(*["shell", command], check=check)


def time_adb(args, manifest):
    adb = Adb(args.adb, args.serial)
    adb.shell(f"mkdir -p {shlex.quote(args.remote_dir)}")
    if args.push_benchmark:
        adb("push", args.push_benchmark, args.benchmark_binary)
        adb.shell(f"chmod 755 {shlex.quote(args.benchmark_binary)}")
    entries = manifest["entries"]
    remote = []
    for i, e in enumerate(entries):
        target = f"{args.remote_dir}/{os.path.basename(e['file'])}"
        adb("push", os.path.join(args.dir, e["file"]), target)
        remote.append(target)
        if (i + 1) % 100 == 0:
            print(f"pushed {i + 1}/{len(entries)}", flush=True)
    model = adb.shell("getprop ro.product.model", check=False).stdout.strip()
    soc = adb.shell("getprop ro.soc.model", check=False).stdout.strip()
    flags = [f"--num_threads={args.threads}", f"--warmup_runs={args.warmup}", "--warmup_min_secs=0",
             f"--num_runs={args.runs}", "--min_secs=0"] + shlex.split(args.extra_flags)
    samples = [[] for _ in entries]
    rng = random.Random(0)
    for r in range(args.rounds):
        order = list(range(len(entries)))
        rng.shuffle(order)
        for i in order:
            command = " ".join(shlex.quote(a) for a in [args.benchmark_binary, f"--graph={remote[i]}", *flags])
            proc = adb.shell(command, check=False)
            parsed = parse_benchmark_output(proc.stdout + "\n" + proc.stderr)
            if parsed is None or proc.returncode != 0:
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
                sys.exit(f"{entries[i]['file']}: benchmark_model failed (exit {proc.returncode}): {' | '.join(tail)}")
            # One value per invocation: the median of its runs where printed, else their mean.
            samples[i].append(parsed.get("median", parsed["avg_us"]) / 1e3)
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    device = {"name": args.name or model or "phone", "model": model or "unknown", "runtime": "benchmark_model (adb)",
              "threads": args.threads, "cpu": soc or "unknown", "flags": " ".join(flags)}
    return device, [(s, args.rounds * args.runs) for s in samples]


# ---- LiteRT interpreter on the device ------------------------------------------------------------
def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter  # deferred: optional, one of two runtimes (interpreter mode)
        return Interpreter, f"ai-edge-litert {version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # deferred: optional, as above
        import tflite_runtime  # deferred: optional, as above
        return Interpreter, f"tflite-runtime {getattr(tflite_runtime, '__version__', '?')}"
    except ImportError:
        sys.exit("interpreter mode needs ai-edge-litert (pip install ai-edge-litert) or tflite-runtime, and numpy")


def time_interpreter(args, manifest):
    import numpy as np  # deferred: the adb mode runs on the standard library alone

    Interpreter, runtime = _interpreter_class()
    entries = manifest["entries"]
    rng = np.random.default_rng(0)
    interps = []
    for e in entries:
        it = Interpreter(model_path=os.path.join(args.dir, e["file"]), num_threads=args.threads)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        x = rng.standard_normal(inp["shape"]).astype(np.float32)
        if inp["dtype"] != np.float32:  # int8 input: quantize with the input's own parameters
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
        it.set_tensor(inp["index"], x)
        for _ in range(args.warmup):
            it.invoke()
        interps.append(it)
    samples = [[] for _ in entries]
    for r in range(args.rounds):
        for i in rng.permutation(len(entries)):
            interps[i].invoke()  # re-warm after the other models ran
            for _ in range(args.runs):
                start = time.perf_counter()
                interps[i].invoke()
                samples[i].append((time.perf_counter() - start) * 1e3)
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    device = {"name": args.name or platform.node(), "runtime": runtime, "provider": "XNNPACK",
              "threads": args.threads, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    return device, [(s, len(s)) for s in samples]


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("adb", "interpreter"))
    p.add_argument("--dir", default=here, help="folder holding manifest.json and the .tflite files")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds over all models")
    p.add_argument("--runs", type=int, default=6, help="timed runs per model per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs before each model's timed ones")
    p.add_argument("--name", help="device name to record (adb: the phone's model by default)")
    p.add_argument("--out", default="timings.json")
    a = p.add_argument_group("adb mode")
    a.add_argument("--adb", default="adb", help="the adb executable")
    a.add_argument("--serial", help="adb -s SERIAL, when several devices are attached")
    a.add_argument("--benchmark-binary", default=BENCHMARK, help="benchmark_model's path on the phone")
    a.add_argument("--push-benchmark", help="a local benchmark_model binary to push there first")
    a.add_argument("--remote-dir", default=REMOTE_DIR, help="where the models go on the phone")
    a.add_argument("--extra-flags", default="", help="more benchmark_model flags, e.g. '--use_xnnpack=true'")
    args = p.parse_args(argv)
    for flag in ("threads", "rounds", "runs"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    manifest = load_manifest(args.dir)
    device, per_entry = (time_adb if args.mode == "adb" else time_interpreter)(args, manifest)
    write_timings(args.out, device, manifest, per_entry)


if __name__ == "__main__":
    main()
