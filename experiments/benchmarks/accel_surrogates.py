"""How well the surrogates of Accel-NASBench's records predict held-out records: top-1 and FPGA latency.

    python experiments/benchmarks/accel_surrogates.py [--folds 5] [--seed 0]
        [--out experiments/benchmarks/results/accel_surrogates.txt]

K-fold cross-validation over the 3,110 shipped records (the same folds for every row): Kendall tau,
RMSE (points of top-1, or ms) and R² on the held-out records, and for latency the median and 90th
percentile absolute percentage error; mean ± sd over folds. Baselines: a linear model of the same 28
choices, and MACs alone. Prints a markdown table and writes it to --out.
"""
import argparse
import time
from pathlib import Path

import sklearn

from nas.groundtruth.surrogate import surrogate_report

OUT = Path(__file__).parent / "results" / "accel_surrogates.txt"
COLUMNS = (("tau", "Kendall tau", 3), ("rmse", "RMSE", 3), ("r2", "R²", 5), ("median_ape_pct", "median abs err %", 2),
           ("p90_ape_pct", "p90 abs err %", 2))


def cell(metrics: dict, key: str, digits: int) -> str:
    if key not in metrics:
        return "–"
    m = metrics[key]
    return f"{m['mean']:.{digits}f} ± {m['sd']:.{digits}f}"


def table(report: dict) -> str:
    lines = ["| row | target | model | RMSE unit | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---:" for _ in COLUMNS) + " |"]
    for name, row in report["rows"].items():
        unit = "points" if row["target"] == "top1" else "ms"
        lines.append(f"| {name} | {row['target']} | {row['model']} | {unit} | "
                     + " | ".join(cell(row["metrics"], key, d) for key, _, d in COLUMNS) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    start = time.perf_counter()
    report = surrogate_report(folds=args.folds, seed=args.seed)
    seconds = time.perf_counter() - start
    n = next(iter(report["rows"].values()))["n"]
    text = "\n".join([
        f"# Surrogates of Accel-NASBench's records: {args.folds}-fold cross-validation (seed {args.seed}), "
        f"{n:,} records",
        f"# python experiments/benchmarks/accel_surrogates.py --folds {args.folds} --seed {args.seed}",
        f"# data: {report['source']}",
        f"# scikit-learn {sklearn.__version__}; whole report {seconds:.1f} s; mean ± sd over folds, held-out records",
        "",
        table(report),
        "",
        "top1: ImageNet top-1 in points (%). zcu102 / vck190: latency_mean in ms; the devices answer the measured "
        "value for a record and the layer-cost row's model elsewhere.",
        "The trees' settings (nas/groundtruth/surrogate.py) were picked from a small grid on these same folds, so "
        "their rows may flatter them slightly; the linear and MACs rows have nothing to pick.",
    ]) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
