"""The newcomer's run on ImageNet ground truth: `python -m nas.search --space ofa_mobilenetv3 --device note10
--proxy ofa-imagenet --target-ms 25`, end to end (a few samples), and its refusals."""
from __future__ import annotations

import json

import pytest

from helpers import assert_user_error, check_user_error, run_cli, run_inprocess
from nas.core.spec_file import load_spec
from nas.groundtruth.ofa import config_of, predict_top1
from nas.latency.devices import get_device
from nas.runtime.jsonl import read_jsonl


def test_the_ofa_run_ends_beside_ofas_network_with_every_top1_labelled(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("nas.search", "--space", "ofa_mobilenetv3", "--device", "note10", "--proxy", "ofa-imagenet",
                   "--target-ms", "25", "--samples", "64", "--deploy", "none", "--out", str(out), "--json",
                   "--quiet", timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    final = load_spec(out / "final.yaml")
    assert result["predicted_ms"] == pytest.approx(get_device("note10").predict(final).ms, abs=1e-3)
    assert result["predicted_ms"] <= 25.0
    assert result["proxy_accuracy"] == pytest.approx(predict_top1([config_of(final)])[0])
    rows = result["comparison"]
    assert rows[0]["kind"] == "final" and "predicted ImageNet top-1" in rows[0]["accuracy_label"]
    assert {r["name"] for r in rows[1:]} >= {"note10_lat-22ms_top1-76.6_finetune-25"}
    assert all(r["accuracy_label"] for r in rows)
    assert "OFA's accuracy predictor" in result["verdict"]
    report = (out / "report.md").read_text()
    assert "trained from scratch" not in report and "predicted ImageNet top-1" in report
    samples = read_jsonl(out / "search" / "samples.jsonl")
    assert len(samples) == 64 and {s["accuracy_source"] for s in samples} == {rows[0]["accuracy_label"]}
    assert len(read_jsonl(out / "netadapt" / "netadapt.jsonl")) == result["netadapt_iterations"] + 1


def test_an_imagenet_proxy_on_another_space_and_note10_on_another_space_are_refused(tmp_path, capsys):
    code, _, err = run_inprocess(["nas.search", "--space", "mobilenetv3_small", "--device", "note10",
                                  "--target-ms", "15", "--out", str(tmp_path / "a")], capsys)
    check_user_error(code, err, "note10", "none of its tables")
    assert not (tmp_path / "a").exists()
    proc = run_cli("nas.search", "--space", "mobilenetv3_small", "--device", "pixel1", "--proxy", "ofa-imagenet",
                   "--target-ms", "15", "--samples", "8", "--out", str(tmp_path / "b"))
    assert_user_error(proc, "stem")


@pytest.mark.parametrize("algorithm", ["ofa-evolution", "guided-evolution"])
def test_searchers_of_the_target_propose_only_networks_that_meet_it_in_the_pipeline(algorithm, tmp_path):
    out = tmp_path / "evo"
    proc = run_cli("nas.search", "--space", "ofa_mobilenetv3", "--device", "note10", "--proxy", "ofa-imagenet",
                   "--algorithm", algorithm, "--target-ms", "20", "--samples", "150", "--deploy", "none",
                   "--out", str(out), "--json", "--quiet", timeout=600)
    assert proc.returncode == 0, proc.stderr
    samples = read_jsonl(out / "search" / "samples.jsonl")
    assert len(samples) == 150 and max(s["latency_ms"] for s in samples) <= 20.0
    # the hard constraint's reward of a network under the target is its accuracy: what OFA ranks by
    assert all(s["reward"] == pytest.approx(s["accuracy"], abs=1e-6) for s in samples)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["predicted_ms"] <= 20.0 and result["netadapt_iterations"] == 0
