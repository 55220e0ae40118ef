"""What host-litert's conversions cost, and why they run in a process of their own.

1. Cold conversion: K ops of the MobileNetV3-Large space converted into an empty cache (seconds per
   op; the first includes the converter's import).
2. The converter's import and LiteRT's speed: P pairs of fresh processes, interleaved, each timing
   the same cached whole-network .tflite files with the LiteRT interpreter (1 thread, median of 30
   runs after 5 warm-ups); in the second of each pair litert-torch is imported first. Prints the
   per-pair ratio (after import / clean) and its median and spread.

    .venv/bin/python experiments/benchmarks/litert_conversion.py [--ops 24] [--pairs 5] [--models 6]
        [--out experiments/benchmarks/results/litert_conversion.txt]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIME_MODELS = r"""
import json, statistics, sys, time
import numpy as np
if sys.argv[1] == "import":
    import litert_torch  # noqa: F401  (what the timing process must not have loaded)
from ai_edge_litert.interpreter import Interpreter
out = []
for path in sys.argv[2:]:
    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(0).standard_normal(d["shape"]).astype(np.float32))
    for _ in range(5):
        it.invoke()
    runs = []
    for _ in range(30):
        t = time.perf_counter(); it.invoke(); runs.append(time.perf_counter() - t)
    out.append(statistics.median(runs) * 1e3)
print(json.dumps(out))
"""


def cold_conversion(n_ops: int) -> list[str]:
    env = {**os.environ, "NAS_CACHE_DIR": tempfile.mkdtemp(prefix="nas-cold-")}
    code = f"""
import json, random, time
from nas.core.space import load_space
from nas.latency.backend import make_backend
from nas.latency.ops import space_ops
if __name__ == "__main__":
    b = make_backend("litert", "fp32")
    ops = list(space_ops(load_space("mobilenetv3_large")))
    random.Random(0).shuffle(ops)
    times = []
    for op in ops[:{n_ops + 1}]:
        t = time.perf_counter(); b.op_model(op); times.append(time.perf_counter() - t)
    print(json.dumps({{"times": times, "ops": len(ops)}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    first, rest = r["times"][0], sorted(r["times"][1:])
    q = statistics.quantiles(rest, n=10)
    med = statistics.median(rest)
    return [f"cold conversion, {len(rest)} ops of mobilenetv3_large ({r['ops']} in the space), fresh cache:",
            f"  first op (with the converter process's start and import): {first:.1f} s",
            f"  then: median {med:.2f} s an op, p10 {q[0]:.2f}, p90 {q[-1]:.2f}",
            f"  the space's ops alone: about {med * r['ops'] / 60:.0f} min"]


def import_effect(pairs: int, n_models: int) -> list[str]:
    from nas.runtime.paths import cache_dir

    models = sorted(str(p) for p in (cache_dir() / "models" / "litert-fp32").glob("network-*.tflite"))[:n_models]
    if len(models) < n_models:
        return [f"import effect: needs {n_models} cached networks under {cache_dir()}/models/litert-fp32 "
                "(run `python -m nas.latency build --device host-litert` first)"]
    lines = [f"LiteRT on {len(models)} cached networks, {pairs} interleaved pairs of fresh processes "
             "(ms per model; ratio = after import / clean):"]
    ratios = []
    for i in range(pairs):
        row = {}
        for mode in (["clean", "import"] if i % 2 == 0 else ["import", "clean"]):  # alternate who goes first
            out = subprocess.run([sys.executable, "-c", TIME_MODELS, mode, *models], capture_output=True, text=True,
                                 check=True).stdout
            row[mode] = json.loads(out.strip().splitlines()[-1])
        ratio = statistics.median(b / a for a, b in zip(row["clean"], row["import"]))
        ratios.append(ratio)
        lines.append(f"  pair {i + 1}: clean {' '.join(f'{v:.2f}' for v in row['clean'])} | after import "
                     f"{' '.join(f'{v:.2f}' for v in row['import'])} | ratio {ratio:.3f}")
    lines.append(f"  median ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=24)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--models", type=int, default=6)
    p.add_argument("--out", help="also write the table to this file")
    args = p.parse_args()
    start = time.perf_counter()
    lines = [*cold_conversion(args.ops), "", *import_effect(args.pairs, args.models),
             "", f"wall {time.perf_counter() - start:.0f} s"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    random.seed(0)
    main()
