"""What one supernet score costs, and where the time goes: BN re-estimation for the path, top-1 on
the held-out images, and the same evaluation on the extracted network.

    .venv/bin/python experiments/benchmarks/supernet_score_cost.py [--spaces mobilenetv3_small,mobilenetv3_large]
        [--paths 6] [--repeats 3] [--threads 2] [--out experiments/runs/supernet_score_cost]

For each space, a supernet is trained for one epoch on 2,000 images (reused from `--out` when there;
how long it trained does not change what a score costs, only what it says), then `--paths` random
paths are each scored `--repeats` times, the parts interleaved so that load on a shared machine
falls on all of them alike: the proxy's whole score (`SupernetProxy.evaluate`), its BN
re-estimation alone (`bn_images` training images), its held-out top-1 alone (`val_images`), and the
extracted network's held-out top-1 (`extract_calibrated`, then the same images). Medians and the
range over paths x repeats; scores a minute from the median whole score.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from nas.accuracy.proxy_config import DataConfig  # noqa: E402
from nas.core.space import load_space  # noqa: E402
from nas.runtime.session import set_threads  # noqa: E402
from nas.supernet.supernet_config import SupernetConfig  # noqa: E402
from nas.supernet.supernet_proxy import SupernetProxy  # noqa: E402
from nas.supernet.supernet_run import CHECKPOINT, SupernetRequest, train_supernet  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cost(space_name: str, out: Path, paths: int, repeats: int, threads: int) -> dict[str, list[float]]:
    from nas.accuracy.training_core import evaluate_accuracy
    from nas.supernet.path_training import PathModel, extract_calibrated, recalibrate_path_bn

    folder = out / space_name
    config = SupernetConfig(epochs=1, train_images=2000)
    if not (folder / CHECKPOINT).exists():
        train_supernet(SupernetRequest(space=space_name, data=DataConfig(), out=folder, config=config,
                                       threads=threads))
    proxy = SupernetProxy(folder / CHECKPOINT, "cpu", threads)
    net, data, c = proxy.load()
    sc = SupernetConfig(**c)
    space = load_space(space_name)
    rng = np.random.default_rng(0)
    specs = [space.sample_spec(rng) for _ in range(paths)]
    proxy.evaluate(specs[0])  # warm-up: first-call allocations

    def val(model):
        return evaluate_accuracy(model, data.batches("val", sc.eval_batch_size))

    times: dict[str, list[float]] = {"score": [], "bn": [], "val": [], "extracted val": []}
    for _ in range(repeats):
        for spec in specs:
            path = net.adapt(spec)
            times["score"].append(timed(lambda: proxy.evaluate(spec)))
            times["bn"].append(timed(lambda: recalibrate_path_bn(
                net, path, data.batches("train", sc.eval_batch_size, limit=sc.bn_images))))
            times["val"].append(timed(lambda: val(PathModel(net, path))))
            extracted = extract_calibrated(net, path, data, sc).eval()
            times["extracted val"].append(timed(lambda: val(extracted)))
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--spaces", default="mobilenetv3_small,mobilenetv3_large")
    p.add_argument("--paths", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "experiments/runs/supernet_score_cost"))
    args = p.parse_args()
    set_threads(args.threads)
    c = SupernetConfig()
    print(f"one supernet score: BN re-estimated on {c.bn_images} training images, top-1 on {c.val_images} "
          f"held-out Fashion-MNIST images at 32x32; CPU, {args.threads} threads; {args.paths} random paths x "
          f"{args.repeats} repeats, interleaved\n")
    print("| space | whole score s | BN re-estimation s | held-out top-1 s | extracted network's top-1 s | "
          "scores / min |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for space in args.spaces.split(","):
        t = cost(space, Path(args.out), args.paths, args.repeats, args.threads)
        cells = [f"{statistics.median(v):.3f} ({min(v):.3f}–{max(v):.3f})" for v in t.values()]
        print(f"| {space} | " + " | ".join(cells) + f" | {60 / statistics.median(t['score']):.0f} |", flush=True)


if __name__ == "__main__":
    main()
