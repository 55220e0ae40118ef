"""Bring others' ImageNet ground truth into the package, once (the package never reads the sources).

    python experiments/groundtruth/import_groundtruth.py SOURCE_DIR

SOURCE_DIR holds `accel-nasbench/` (records.jsonl.gz, LICENSE) and `ofa/` (acc_predictor.pth,
note10/<r>_lookup_table.yaml, specialized_nets.json, LICENSE), as their READMEs describe. Writes:

- nas/data/groundtruth/: the Accel records and the OFA specialised networks verbatim, OFA's
  predictor as plain arrays (`ofa_acc_predictor.npz`: no pickle), both licences;
- nas/data/latency_tables/note10/r<R>.yaml: OFA's Note10 per-layer table at input resolution R in the
  project's table format, every layer under the project's op key (the head's four timed parts,
  Conv_1 + AvgPool2D + Conv_2 + Logits, are one `head` op), and note10.yaml, the device that picks
  a network's table by its resolution. One table per resolution, as OFA measured them: the same
  layer geometry occurs at neighbouring resolutions (a 6x6x192 layer at 176 and at 192 px) and
  was timed once in each. OFA keeps mean, std and count of its runs: the median is taken as the
  mean, p10 / p90 as mean -/+ 1.2816 std (normal), n the count.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from nas.export.timing import Timing  # noqa: E402
from nas.latency.table import LatencyTable  # noqa: E402

OUT = ROOT / "nas" / "data" / "groundtruth"
Z10 = 1.2815515655446004  # the normal's 90th percentile in standard deviations
_BLOCK = re.compile(r"expanded_conv-input:(\d+)x\1x(\d+)-output:(\d+)x\3x(\d+)-expand:(\d+)-kernel:(\d+)"
                    r"-stride:(\d+)-idskip:([01])-se:([01])-hs:([01])")
_STEM = re.compile(r"Conv-input:(\d+)x\1x3-output:(\d+)x\2x(\d+)")
_HEAD = {"Conv_1": re.compile(r"Conv_1-input:(\d+)x\1x(\d+)-output:\1x\1x(\d+)"),
         "AvgPool2D": re.compile(r"AvgPool2D-input:(\d+)x\1x(\d+)-output:1x1x\2"),
         "Conv_2": re.compile(r"Conv_2-input:1x1x(\d+)-output:1x1x(\d+)"),
         "Logits": re.compile(r"Logits-input:1x1x(\d+)-output:(\d+)")}


def timing(mean: float, var: float, n: int) -> Timing:
    sd = math.sqrt(var)
    lo = max(mean - Z10 * sd, 0.01 * mean)
    return Timing(round(mean, 6), round(lo, 6), round(mean + Z10 * sd, 6), int(n))


def convert_table(path: Path) -> dict[str, Timing]:
    lut = yaml.safe_load(path.read_text())
    ops: dict[str, Timing] = {}
    head: dict[str, dict] = {}
    for key, t in lut.items():
        if m := _BLOCK.fullmatch(key):
            hw, cin, _, cout, mid, k, s, _, se, hs = map(int, m.groups())
            new = f"bneck-in:{hw}x{hw}x{cin}-exp:{mid}-out:{cout}-k:{k}-s:{s}-se:{se}-act:{'hswish' if hs else 'relu'}"
        elif m := _STEM.fullmatch(key):
            r, _, out = map(int, m.groups())
            new = f"stem-in:{r}x{r}x3-out:{out}-k:3-s:2-act:hswish"
        else:
            part = key.split("-", 1)[0]
            if part not in _HEAD or not _HEAD[part].fullmatch(key):
                raise SystemExit(f"{path}: unknown key {key!r}")
            head[part] = t
            continue
        if new in ops:
            raise SystemExit(f"{path}: two keys map to {new}")
        ops[new] = timing(t["mean"], t["std"] ** 2, t["count"])
    hw, cin, conv = map(int, _HEAD["Conv_1"].fullmatch(next(k for k in lut if k.startswith("Conv_1"))).groups())
    _, fc = map(int, _HEAD["Conv_2"].fullmatch(next(k for k in lut if k.startswith("Conv_2"))).groups())
    _, classes = map(int, _HEAD["Logits"].fullmatch(next(k for k in lut if k.startswith("Logits"))).groups())
    parts = [head[p] for p in _HEAD]
    key = f"head-in:{hw}x{hw}x{cin}-conv:{conv}-fc:{fc}-act:hswish-classes:{classes}"
    ops[key] = timing(sum(p["mean"] for p in parts), sum(p["std"] ** 2 for p in parts),
                      min(p["count"] for p in parts))
    return ops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    src = ap.parse_args().source
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "accel-nasbench" / "records.jsonl.gz", OUT / "accel_records.jsonl.gz")
    shutil.copyfile(src / "accel-nasbench" / "LICENSE", OUT / "LICENSE-accel-nasbench")
    shutil.copyfile(src / "ofa" / "LICENSE", OUT / "LICENSE-once-for-all")
    shutil.copyfile(src / "ofa" / "specialized_nets.json", OUT / "ofa_specialized_nets.json")

    state = torch.load(src / "ofa" / "acc_predictor.pth", map_location="cpu", weights_only=True)
    arrays = {f"{kind}{i // 2}": state[f"{i}.{kind}"].numpy() for i in (0, 2, 4, 6) for kind in ("weight", "bias")}
    np.savez_compressed(OUT / "ofa_acc_predictor.npz", **arrays)

    files = sorted((src / "ofa" / "note10").glob("*_lookup_table.yaml"), key=lambda p: int(p.name.split("_")[0]))
    tables = ROOT / "nas" / "data" / "latency_tables"
    (tables / "note10").mkdir(exist_ok=True)
    device = {"name": "note10", "phone": "Samsung Galaxy Note10", "runtime": "TensorFlow Lite (float32)",
              "batch": 1, "source": "once-for-all (MIT), tutorial/checkpoints/latency_table@note10, measured by "
              "its authors on the phone", "statistics": "median = OFA's mean of its runs; p10/p90 = mean -/+ "
              "1.2816 sd"}
    index = {}
    for path in files:
        r = int(path.name.split("_")[0])
        ops = convert_table(path)
        LatencyTable({**device, "resolution": r}, ops, {"scale": 1.0, "offset_ms": 0.0}).save(
            tables / "note10" / f"r{r}.yaml")
        index[r] = f"note10/r{r}.yaml"
    lines = ["# Samsung Galaxy Note10 (TensorFlow Lite, float32), measured per layer by the once-for-all authors:",
             "# a network's latency is the sum of its layers in the table of its input resolution.",
             "# Written by experiments/groundtruth/import_groundtruth.py.",
             "kind: per_resolution",
             f"device: {json.dumps(device, sort_keys=True)}",
             "unit: ms",
             "tables:"] + [f"  {r}: {json.dumps(p)}" for r, p in index.items()] + [f"n_tables: {len(index)}"]
    (tables / "note10.yaml").write_text("\n".join(lines) + "\n")
    print(f"{len(index)} tables of {len(ops)} ops; predictor {sum(a.size for a in arrays.values()):,} weights")


if __name__ == "__main__":
    main()
