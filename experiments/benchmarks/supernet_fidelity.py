"""How much supernet training buys how much fidelity: supernets of one space trained for several
lengths (and samplers), each scoring an audit's architectures, against that audit's reference.

For every variant: train a supernet on the proxy task (Fashion-MNIST at 32x32, the default budget's
supernet recipe with the variant's changes), score every architecture of the audit by its inherited
top-1 (BN re-estimated per path), and print Kendall tau and Spearman rho against the audit's
reference (the mean of its seeds), the training's seconds and the seconds per score, with tau's
noise at this N and the reference's own ceiling. Each variant's supernet is kept under --work
(resumed there), so an interrupted run repeats nothing.

    .venv/bin/python experiments/benchmarks/supernet_fidelity.py --audit experiments/runs/audit-small-n20
        [--variants 1ep,3ep,6ep,3ep-uniform] [--threads 2] [--work experiments/runs/supernet_fidelity]
        [--out experiments/benchmarks/results/supernet_fidelity.txt]
"""
from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import replace
from pathlib import Path

from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
VARIANT = re.compile(r"(\d+)ep(-uniform)?(-transform)?")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--audit", required=True, help="an audit's output directory (its audit.json)")
    p.add_argument("--variants", default="1ep,3ep,6ep,3ep-uniform")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default=str(ROOT / "experiments" / "runs" / "supernet_fidelity"))
    p.add_argument("--out", help="also write the table to this file")
    args = p.parse_args()

    from nas.audit.ranks import tau_standard_error
    from nas.accuracy.proxy_config import DataConfig
    from nas.budgets import get_budget
    from nas.core.spec import spec_from_string
    from nas.supernet.supernet_proxy import SupernetProxy
    from nas.supernet.supernet_run import SUMMARY, SupernetRequest, train_supernet

    audit = json.loads((Path(args.audit) / "audit.json").read_text())
    summary = audit["summary"]
    rows = [r for r in audit["rows"] if r["reference"] and not r["reference"]["failed"]]
    specs = [spec_from_string(r["arch"]) for r in rows]
    reference = [r["reference"]["accuracy"] for r in rows]
    data = DataConfig(**{k: v for k, v in summary["data"].items()})
    base = get_budget(summary["budget"]).accuracy.supernet
    lines = [f"supernet fidelity on {summary['space']}: {len(rows)} architectures of {args.audit} "
             f"(reference: mean of seeds {summary['reference_seeds']}, ceiling tau "
             f"{summary['reference_ceiling_tau']:+.3f}; tau of unrelated rankings sd {tau_standard_error(len(rows)):.3f})",
             f"recipe: the {summary['budget']} budget's supernet ({base.train_images} images, batch {base.batch_size}, "
             f"{base.paths} paths a step, BN on {base.bn_images} images, scored on {base.val_images} held out), "
             f"{args.threads} thread(s)", "",
             "| variant | epochs | sampler | train s | s / score | largest top-1 | smallest top-1 | scores min..max "
             "| Kendall tau | Spearman rho |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    print("\n".join(lines), flush=True)
    for name in args.variants.split(","):
        m = VARIANT.fullmatch(name.strip())
        if not m:
            raise SystemExit(f"bad variant {name!r}: e.g. 3ep, 3ep-uniform, 3ep-transform")
        config = replace(base, epochs=int(m.group(1)), sampler="uniform" if m.group(2) else base.sampler,
                         kernel_transform=bool(m.group(3)))
        out = Path(args.work) / summary["space"] / name
        done = json.loads((out / SUMMARY).read_text()) if (out / SUMMARY).exists() else None
        if not (done and done.get("finished")):
            done = train_supernet(SupernetRequest(space=summary["space"], data=data, out=out, config=config,
                                                  seed=summary["seed"], resume=(out / "supernet.pt").exists(),
                                                  threads=args.threads, progress=False))
        proxy = SupernetProxy(out, threads=args.threads)
        start = time.perf_counter()
        scores = [proxy.evaluate(s)["accuracy"] for s in specs]
        per_score = (time.perf_counter() - start) / len(specs)
        tau = stats.kendalltau(reference, scores).statistic
        rho = stats.spearmanr(reference, scores).statistic
        train_s = sum(h["seconds"] for h in done["history"])
        row = (f"| {name} | {config.epochs} | {config.sampler} | {train_s:.0f} | {per_score:.2f} | "
               f"{done['largest_accuracy']:.4f} | {done['smallest_accuracy']:.4f} | {min(scores):.4f}..{max(scores):.4f} "
               f"| {tau:+.3f} | {rho:+.3f} |")
        lines.append(row)
        print(row, flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
