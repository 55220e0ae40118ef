"""`python -m nas.proxies` as a user runs it: train, score, audit (smoke, resumable) and one-line errors."""
import json

import numpy as np
import pytest

from helpers import REFERENCE, assert_user_error, check_user_error, run_cli, run_inprocess
from helpers.data import write_idx_dataset

SMALL = str(REFERENCE / "mobilenetv3_small.yaml")


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("cli") / "fmnist", n=1200)


def _last_json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_json(idx_dir):
    result = _last_json(run_cli("nas.proxies", "train", "--spec", SMALL, "--data", str(idx_dir), "--steps", "3",
                                "--train-images", "64", "--val-images", "32", "--batch-size", "16", "--threads", "1",
                                "--json"))
    assert result["steps"] == 3 and 0 <= result["accuracy"] <= 1 and result["seconds"] > 0
    assert result["failed"] is False and result["dataset"] == "fashion-mnist" and result["val_images"] == 32
    # One seed: its noise is the measurement's binomial SE; the seed-to-seed sd needs --seeds.
    p = result["accuracy"]
    assert result["accuracy_sd"] is None and result["standard_error"] == pytest.approx((p * (1 - p) / 32) ** 0.5)


def test_train_seeds_report_the_seed_to_seed_spread(idx_dir, capsys):
    args = ["nas.proxies", "train", "--spec", SMALL, "--data", str(idx_dir), "--steps", "3", "--train-images", "64",
            "--val-images", "64", "--batch-size", "16", "--threads", "1", "--seeds", "3", "--seed", "5"]
    code, out, _ = run_inprocess([*args, "--json"], capsys)
    assert code == 0
    r = json.loads(out.strip().splitlines()[-1])
    assert r["seeds"] == [5, 6, 7] and len(r["accuracies"]) == 3
    assert r["accuracy"] == pytest.approx(sum(r["accuracies"]) / 3)
    assert r["accuracy_sd"] == pytest.approx(float(np.std(r["accuracies"], ddof=1)))
    assert len(set(r["accuracies"])) > 1  # the seeds really differ (3 steps from 3 initialisations)
    code, out, _ = run_inprocess(args, capsys)
    assert code == 0 and f"± {r['accuracy_sd']:.4f} (seed-to-seed sd, 3 seeds)" in out


def test_score_json(idx_dir):
    result = _last_json(run_cli("nas.proxies", "score", "--spec", SMALL, "--data", str(idx_dir), "--proxy", "all",
                                "--budget", "smoke", "--threads", "1", "--json"))
    assert set(result["scores"]) >= {"naswot", "synflow", "grad_norm", "zen", "params", "macs"}
    assert all(isinstance(v, float) for v in result["scores"].values())
    one = _last_json(run_cli("nas.proxies", "score", "--spec", SMALL, "--data", str(idx_dir), "--proxy", "params",
                             "--threads", "1", "--json"))
    assert one["score"] == result["scores"]["params"]


@pytest.mark.parametrize("args, needles", [
    (("train", "--spec", "missing.yaml"), ("missing.yaml", "not found")),
    (("train", "--spec", SMALL, "--data", "/nonexistent/data"), ("/nonexistent/data", "--data")),
    (("train", "--spec", SMALL, "--epochs", "0"), ("--epochs",)),
    (("train", "--spec", SMALL, "--epochs", "1", "--steps", "2"), ("--steps",)),
    (("train", "--spec", SMALL, "--bogus"), ("--bogus",)),
    (("score", "--spec", SMALL, "--proxy", "oracle"), ("--proxy", "oracle")),
    (("audit", "--space", "no_such_space", "--samples", "3"), ("no_such_space",)),
    (("audit", "--space", "mobilenetv3_small", "--samples", "3", "--budget", "huge"), ("--budget",)),
    (("frobnicate",), ("frobnicate",)),
])
def test_user_errors_are_one_line(args, needles, capsys):
    code, _, err = run_inprocess(["nas.proxies", *args], capsys)
    check_user_error(code, err, *needles)


def test_audit_smoke_end_to_end_and_resume(idx_dir, tmp_path):
    out = tmp_path / "audit"
    args = ("nas.proxies", "audit", "--space", "mobilenetv3_small", "--samples", "3", "--budget", "smoke",
            "--data", str(idx_dir), "--out", str(out), "--threads", "1", "--no-published", "--no-supernet", "--json")
    result = _last_json(run_cli(*args))
    expected = {"train-1ep", "train-2ep", "naswot", "synflow", "grad_norm", "zen", "params", "macs"}
    cascades = {f"{z}>train-1ep" for z in ("naswot", "synflow", "grad_norm", "zen")}
    assert set(result["kendall_tau"]) == expected | cascades and set(result["seconds"]) == expected | cascades
    assert all(t is None or -1 <= t <= 1 for t in result["kendall_tau"].values())
    assert result["samples"] == 3 and result["reference"]["seconds"] > 0 and result["compute_s"] > 0
    assert result["recommended_for_reward"] in {None, "train-1ep", "train-2ep"} | cascades
    assert "supernet" not in result and not (out / "supernet").exists()  # --no-supernet (tested in test_audit_seeds)
    for name in ("audit.md", "audit.json", "scatter.png", "fidelity.png", "results.jsonl"):
        assert (out / name).is_file(), name
    assert "| proxy |" in (out / "audit.md").read_text()
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3 * (2 + len(expected))  # two reference seeds
    # no temporaries left behind (the run lock's file stays, empty: unlinking lock files races)
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock"]

    again = _last_json(run_cli(*args))  # resumed: every result comes from the cache
    assert (out / "results.jsonl").read_text().splitlines() == lines
    assert again["kendall_tau"] == result["kendall_tau"]


def test_flag_values_checked_by_the_configs_are_reported_by_flag():
    """The real entry point (the errors above run in-process)."""
    assert_user_error(run_cli("nas.proxies", "train", "--spec", SMALL, "--resolution", "4"), "--resolution")
