"""Interrupt a search, a table build and NetAdapt at random moments, and cut their power after a
random rename; resume; compare with an uninterrupted run.

For each command: one uninterrupted run (its wall time T, its result and the number R of renames in
its folder), then `--cases` runs per kind of interruption: SIGINT, SIGTERM or SIGKILL sent at a
moment drawn uniformly from (0, T) after start, or a power cut after the Nth rename, N drawn
uniformly from 1..R (tests/helpers/interrupt.py's POWER_CUT: the run folder is copied as it is
between that rename and the next write, the process dies, and the run resumes from the copy).
After the interruption every file the run left must be whole (a torn last line of an append-only
log excepted); after SIGINT or SIGTERM the last stderr line must say how to resume (or that nothing
was saved). The run is then resumed (the command the message gave; after SIGKILL or a power cut,
the command's --resume form) to the end, its files must be whole, and its result must equal the
uninterrupted run's. Prints one row per case.

    .venv/bin/python experiments/benchmarks/interruption_audit.py [--cases 4] [--seed 0]
        [--only search|netadapt|table build] [--kinds SIGINT,SIGTERM,SIGKILL,power]
        [--out experiments/benchmarks/results/interruption_audit.md]
"""
from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from helpers.interrupt import broken_files, power_cut, run_until  # noqa: E402

SMALL = ROOT / "search_spaces" / "reference" / "mobilenetv3_small.yaml"
TINY_SPACE = ROOT / "tests" / "data" / "tiny_space.yaml"


def search_case(out: Path):
    # Without the baselines' trainings and the deploy stage's TFLite and int8 conversions (together most
    # of a smoke run's time): search, select, NetAdapt, export, the final network's own trainings, report.
    cmd = ["nas.search", "--target-ms", "15", "--space", "mobilenetv3_small", "--budget", "smoke", "--baselines",
           "none", "--deploy", "none", "--out", str(out)]
    resume = ["nas.search", "--resume", "--out", str(out)]

    def result():
        samples = [json.loads(line) for line in (out / "search" / "samples.jsonl").read_text().splitlines()]
        return {"final": (out / "final.yaml").read_text(),
                "rewards": [round(s["reward"], 9) for s in samples], "n": len(samples)}
    return cmd, resume, result


def netadapt_case(out: Path):
    cmd = ["nas.netadapt", "--spec", str(SMALL), "--target-ms", "11.5", "--out", str(out), "--budget", "smoke",
           "--steps", "2", "--final-steps", "10", "--delta", "0.05", "--seed-steps", "20", "--train-images", "256",
           "--val-images", "128", "--threads", "1"]

    def result():
        records = [json.loads(line) for line in (out / "netadapt.jsonl").read_text().splitlines()]
        return {"final": (out / "final.yaml").read_text(),
                "path": [(r.get("iteration"), r.get("accuracy")) for r in records if r["type"] == "iteration"]}
    return cmd, cmd + ["--resume"], result


def build_case(out: Path):
    table = out / "host.yaml"
    cmd = ["nas.latency", "build", "--space", str(TINY_SPACE), "--table", str(table), "--chunk", "8",
           "--calibration-samples", "4"]

    def result():  # timings differ run to run; what must match is the set of ops and a calibration
        text = table.read_text()
        keys = sorted(line.split('":')[0] for line in text.splitlines() if line.startswith('  "'))
        return {"ops": keys, "calibrated": "calibration:" in text}
    return cmd, cmd, result


CASES = {"search": search_case, "netadapt": netadapt_case, "table build": build_case}
KINDS = ("SIGINT", "SIGTERM", "SIGKILL", "power")
EXPECTED_EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -9, "power": 137}


def stage(out: Path) -> str:
    """Where the run was, from the files it had written."""
    marks = [("summary.json", "done"), ("report.md", "report"), ("final.onnx", "export"), ("final.yaml", "final"),
             ("netadapt/netadapt.jsonl", "netadapt"), ("netadapt.jsonl", "netadapt"),
             ("search/samples.jsonl", "search"), ("host.yaml", "measuring"), ("config.yaml", "setup")]
    for name, label in marks:
        if (out / name).exists():
            return label
    return "start"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--cases", type=int, default=4, help="random moments per command and kind of interruption")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=sorted(CASES))
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    p.add_argument("--out")
    args = p.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    if not set(kinds) <= set(KINDS):
        p.error(f"--kinds: one or more of {', '.join(KINDS)}")
    rng = random.Random(args.seed)
    rows = ["| command | interruption | at | of | stage | exit | message | whole after | resumed | "
            "whole at end | same result |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    tally = {"tried": 0, "passed": 0}
    with tempfile.TemporaryDirectory(prefix="nas-int-") as tmp:
        for name, make in CASES.items():
            if args.only and name != args.only:
                continue
            ref_out = Path(tmp) / f"{name.replace(' ', '_')}-ref"
            cmd, _, result = make(ref_out)
            ref, renames = power_cut(cmd, ref_out, 0, Path(tmp) / "unused")  # counts the renames, cuts nothing
            assert ref.returncode == 0 and renames > 0, ref.stderr[-2000:]
            expected = result()
            for kind in kinds:
                for i in range(args.cases):
                    out = Path(tmp) / f"{name.replace(' ', '_')}-{kind}-{i}"
                    cmd, resume, result = make(out)
                    message, follow = "-", resume
                    if kind == "power":
                        n = rng.randint(1, renames)
                        at, of = f"rename {n}", f"{renames}"
                        snapshot = Path(tmp) / f"{out.name}-snapshot"
                        got, _ = power_cut(cmd, out, n, snapshot)
                        hit = snapshot.exists()
                        if hit:  # the disk after the cut: the copy, whatever the process did after it
                            shutil.rmtree(out, ignore_errors=True)
                            shutil.copytree(snapshot, out, symlinks=True)
                    else:
                        sig = signal.Signals[kind]
                        moment = rng.uniform(0.05, 1.0) * ref.seconds
                        at, of = f"{moment:.1f} s", f"{ref.seconds:.1f} s"
                        got = run_until(cmd, sig, moment)
                        hit = got.hit
                    where = stage(out)
                    whole_after = broken_files(out, finished=False) if out.exists() else []
                    if kind in ("SIGINT", "SIGTERM") and hit:
                        line = got.last_line
                        if "continue with: python -m " in line:
                            message = "resume hint"
                            follow = shlex.split(line.split("continue with: ", 1)[1].split("  (")[0])[2:]
                        elif "nothing was saved" in line:
                            message, follow = "nothing saved", cmd
                        else:
                            message = f"BAD: {line[:60]}"
                    end = run_until(follow, None, 0)
                    if end.returncode == 2 and ("nothing to resume" in end.stderr or "no config.yaml" in end.stderr):
                        end = run_until(cmd, None, 0)  # killed before anything was saved: start again
                    whole_end = broken_files(out, finished=True)
                    same = end.returncode == 0 and result() == expected
                    if hit and got.returncode == 0:
                        message = "had finished"  # the signal came as the process was exiting
                    ok = (not hit or got.returncode == 0
                          or (got.returncode == EXPECTED_EXIT[kind] and not message.startswith("BAD"))) \
                        and not whole_after and end.returncode == 0 and not whole_end and same
                    tally["tried"] += 1
                    tally["passed"] += ok
                    rows.append(f"| {name} | {kind} | {at} | {of} | "
                                f"{where if hit else 'finished first'} | {got.returncode} | {message} | "
                                f"{'yes' if not whole_after else '; '.join(whole_after)[:80]} | {end.returncode} | "
                                f"{'yes' if not whole_end else '; '.join(whole_end)[:80]} | {'yes' if same else 'NO'} |")
                    print(rows[-1], flush=True)
    text = "\n".join(rows) + (f"\n\n{tally['passed']} of {tally['tried']} cases passed (seed {args.seed}, "
                              f"--cases {args.cases}).\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
