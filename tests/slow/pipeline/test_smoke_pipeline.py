"""The headline command at the smoke budget, end to end: `python -m nas.search --target-ms 50 --budget
smoke` owning its run, its comparison and deployment, then resumed (slow: the suite's longest test).

The fast path keeps a whole smoke pipeline in .ci/run's wheel check (`nas-search --budget smoke`) and,
on the tiny space, in tests/integration/pipeline/test_family.py and
tests/integration/supernet/test_supernet_search.py."""
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import ROOT, assert_user_error, run_cli
from nas.core.spec_file import load_spec
from nas.latency.devices import get_device
from nas.runtime.jsonl import read_jsonl


def test_smoke_pipeline_end_to_end_and_resume(tmp_path, fashion_mnist):
    out = tmp_path / "run"
    proc = run_owning_its_run(["--target-ms", "50", "--budget", "smoke", "--out", str(out), "--json",
                               "--data", str(fashion_mnist)], out, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("final_spec", "onnx", "predicted_ms", "measured_host_ms", "proxy_accuracy", "samples", "wall_s"):
        assert key in result, key
    # NetAdapt stops at the target, never above it; and its last step cuts only what the target needs.
    assert 0.98 * 50 <= result["predicted_ms"] <= 50, result["predicted_ms"]
    assert result["max_abs_diff"] <= 1e-4 and result["measured_host_ms"] > 0
    assert result["space"] == "mobilenetv3_large"  # auto picks Large for 50 ms on pixel1
    # The final network beside the width-scaled MobileNetV3-Large at the same latency, each trained
    # with the final recipe at the smoke budget's 2 seeds; a difference with its CI, and a verdict.
    final_row, scaled = result["comparison"]
    assert (final_row["kind"], scaled["kind"]) == ("final", "width_scaled")
    assert abs(scaled["latency_ms"] / 50 - 1) <= 0.02 and scaled["name"].startswith("mobilenetv3_large_x")
    for row in (final_row, scaled):
        assert row["seeds"] == 2 and len(row["accuracies"]) == 2 and row["accuracy_sd"] is not None
        assert row["accuracy_mean"] == pytest.approx(sum(row["accuracies"]) / 2)
    diff = scaled["difference"]
    assert diff["ci_low"] <= diff["mean"] <= diff["ci_high"]
    assert diff["mean"] == pytest.approx(final_row["accuracy_mean"] - scaled["accuracy_mean"])
    assert scaled["judgement"] in result["verdict"] or "indistinguishable" in result["verdict"]
    assert result["proxy_accuracy"] == final_row["accuracy_mean"]
    assert len(read_jsonl(out / "compare" / "trainings.jsonl")) == 4
    final = load_spec(result["final_spec"])
    assert get_device("pixel1").predict(final).ms == pytest.approx(result["predicted_ms"], abs=1e-3)
    assert get_device("pixel1").predict(final).ms <= 50
    for name in ("config.yaml", "best.yaml", "final.yaml", "final.onnx", "report.md", "search/samples.jsonl",
                 "netadapt/netadapt.jsonl", "search_progress.png", "pareto.png", "summary.json"):
        assert (out / name).exists(), name
    samples = read_jsonl(out / "search" / "samples.jsonl")
    assert len(samples) == result["samples"] == 96
    assert [s["i"] for s in samples] == list(range(96))
    report = (out / "report.md").read_text()
    assert "mobilenetv3_large" in report and "ir_k" in report
    # The deploy stage: final.tflite checked against torch; int8 timed against fp32 on both runtimes
    # and scored on the proxy task with the compare stage's trained final network.
    assert result["tflite"] == str(out / "final.tflite") and (out / "final.tflite").stat().st_size > 0
    deploy = result["deploy"]
    assert deploy["tflite_max_abs_diff"] <= 1e-4
    for runtime in ("onnxruntime", "litert"):
        t = deploy["int8"][runtime]
        assert t["fp32_ms"] > 0 and t["int8_ms"] > 0 and t["speedup"] == pytest.approx(t["fp32_ms"] / t["int8_ms"], rel=1e-2)
    acc = deploy["int8"]["accuracy"]
    assert acc["val_images"] > 0 and abs(acc["onnx_int8_drop_points"]) < 10 and abs(acc["tflite_int8_drop_points"]) < 10
    assert acc["fp32_top1"] > 0.2  # the compare stage's trained network, not random weights (0.1)
    assert (out / "compare" / "final-seed0.pt").exists()
    assert "## Deployment" in report and "int8 against fp32" in report and "python -m nas.train" in report
    assert result["train_command"] == f"python -m nas.train {out / 'final.yaml'} --out {out / 'train'} " \
                                      f"--data {fashion_mnist} --dataset fashion-mnist"
    assert "**Verdict:**" in report and "final − this, points [95% CI]" in report
    assert "# ir_k" in (out / "final.yaml").read_text()  # block strings beside every row
    # Resuming a finished run redoes nothing and answers the same.
    again = run_cli("nas.search", "--resume", "--out", str(out), "--json", timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert second["final_spec"] == result["final_spec"] and second["predicted_ms"] == result["predicted_ms"]
    assert len(read_jsonl(out / "search" / "samples.jsonl")) == 96
    assert len(read_jsonl(out / "compare" / "trainings.jsonl")) == 4  # nothing trained twice
    assert second["comparison"] == result["comparison"] and second["verdict"] == result["verdict"]


def run_owning_its_run(args: list[str], out: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`python -m nas.search ARGS` to the end; while it runs, a second process on the same run
    (`--resume --out`) must be refused at once: exit 2, one line naming the first's pid and how to resume.

    The first is stopped (SIGSTOP) while the second tries, so that it cannot finish and release
    the lock before a slow second start-up reaches it."""
    stdout = open(tmp_path / "first.out", "w+")
    first = subprocess.Popen([sys.executable, "-m", "nas.search", *args], cwd=ROOT, stdout=stdout,
                             stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    started = threading.Event()  # its first log line names the run: config.yaml is written and locked

    def read_stderr():
        for line in first.stderr:
            lines.append(line)
            if f"; run {out}" in line:
                started.set()
        started.set()  # it ended without starting: the assertions below say so

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        started.wait(timeout=300)
        assert first.poll() is None and (out / "config.yaml").exists(), "".join(lines)[-3000:]
        saved = (out / "config.yaml").read_text()
        first.send_signal(signal.SIGSTOP)
        try:
            second = run_cli("nas.search", "--resume", "--out", str(out), timeout=120)
        finally:
            first.send_signal(signal.SIGCONT)
        # Refused at once while the first holds the run, instead of waiting for its lock.
        assert_user_error(second, str(out), f"pid {first.pid}", f"--resume --out {out}")
        assert (out / "config.yaml").read_text() == saved
        first.wait(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        reader.join(timeout=60)
    stdout.seek(0)
    text = stdout.read()
    stdout.close()
    return subprocess.CompletedProcess(first.args, first.returncode, text, "".join(lines))
