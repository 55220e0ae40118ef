"""`python -m nas.supernet` and `python -m nas.search --proxy supernet`: a smoke run trains one
supernet and scores every sample with it; a second run reuses it with --supernet; `extract` hands a
network with inherited weights to `nas.train --init`."""
import json

import pytest
import torch

from helpers import DATA, assert_user_error, run_cli
from nas.core.space import load_space
from nas.runtime.jsonl import read_jsonl
from nas.search.algorithms import read_state
from nas.supernet.supernet_proxy import SupernetProxy

TINY = DATA / "tiny_space.yaml"


def _json(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, fashion_mnist):
    out = tmp_path_factory.mktemp("supernet") / "run"
    # 1.2 ms on pixel1 lies inside the tiny space (0.98..1.71 ms): select picks a sample NetAdapt shrinks,
    # so NetAdapt starts from the supernet's weights.
    proc = run_cli("nas.search", "--target-ms", "1.2", "--space", str(TINY), "--budget", "smoke", "--proxy",
                   "supernet", "--samples", "12", "--cpus", "1", "--baselines", "none", "--deploy", "none",
                   "--data", str(fashion_mnist), "--out", str(out), "--json", timeout=600)
    return out, _json(proc)


def test_a_smoke_search_trains_one_supernet_and_scores_every_sample_with_it(smoke_run):
    out, result = smoke_run
    stage = json.loads((out / "pipeline.json").read_text())["done"]["supernet"]
    assert stage["trained"] and stage["epochs"] == 2 and (out / "supernet" / "supernet.pt").is_file()
    samples = read_jsonl(out / "search" / "samples.jsonl")
    assert len(samples) == 12
    # Each sample's accuracy is its path's inherited top-1, repeatable from the saved supernet.
    proxy = SupernetProxy(out / "supernet", threads=1)
    space = load_space(TINY)
    for s in samples[:3]:
        assert proxy.evaluate(space.decode(s["tokens"]))["accuracy"] == pytest.approx(s["score"])
    assert len({s["score"] for s in samples}) > 1  # the supernet tells paths apart
    assert json.loads((out / "summary.json").read_text())["proxy"] == "supernet" and result["predicted_ms"] <= 1.2
    netadapt = json.loads((out / "pipeline.json").read_text())["done"]["netadapt"]
    assert netadapt["inherited"] and netadapt["note"].startswith("started from the supernet's weights")


def test_a_second_run_reuses_the_supernet_and_a_bad_one_is_refused(smoke_run, tmp_path, fashion_mnist):
    out, _ = smoke_run
    common = ["nas.search", "--target-ms", "1.2", "--space", str(TINY), "--budget", "smoke", "--samples", "4",
              "--cpus", "1", "--baselines", "none", "--deploy", "none", "--data", str(fashion_mnist), "--proxy", "supernet"]
    proc = run_cli(*common, "--supernet", str(out / "supernet"), "--out", str(tmp_path / "again"), "--json",
                   timeout=600)
    _json(proc)
    stage = json.loads((tmp_path / "again" / "pipeline.json").read_text())["done"]["supernet"]
    assert stage["trained"] is False and stage["checkpoint"] == str((out / "supernet" / "supernet.pt").resolve())
    assert not (tmp_path / "again" / "supernet").exists()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a supernet")
    assert_user_error(run_cli(*common, "--supernet", str(bad), "--out", str(tmp_path / "bad")), str(bad))
    assert_user_error(run_cli(*common[:-2], "--supernet", str(out / "supernet"), "--out", str(tmp_path / "x")),
                      "--supernet", "--proxy supernet")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "x").exists()  # refused before anything is written


def test_extract_hands_inherited_weights_to_nas_train(smoke_run, tmp_path):
    """What `nas.train --init` checks (its own tests run it with --init): the weights fit the spec as
    trained, and they are the supernet's, BN re-estimated for the path."""
    from nas.core.model import build_model
    from nas.core.spec_file import load_spec
    from nas.train.training_loop import check_fits, training_spec
    from nas.train.recipe import scale_recipe

    out, result = smoke_run
    weights = tmp_path / "final.pt"
    extracted = _json(run_cli("nas.supernet", "extract", result["final_spec"], "--supernet", str(out / "supernet"),
                              "--out", str(weights), "--threads", "1", "--json"))
    assert weights.is_file() and extracted["params"] > 0
    assert extracted["train_command"] == f"python -m nas.train {extracted['spec_path']} --init {weights}"
    state = torch.load(weights, weights_only=True)
    spec = load_spec(extracted["spec_path"])
    check_fits(build_model(training_spec(spec, scale_recipe(128, 10, 1))), state, str(weights), "spec")
    assert state["head.classifier.weight"].shape[0] == 10 and spec.resolution == 32
    assert float(state["head.conv.1.running_var"].sum()) != float(state["head.conv.1.running_var"].numel())


def test_supernet_train_resumes_and_refuses_other_settings(tmp_path, fashion_mnist):
    base = ["nas.supernet", "train", "--space", str(TINY), "--epochs", "2", "--train-images", "128",
            "--val-images", "64", "--batch-size", "32", "--paths", "2", "--bn-images", "32", "--threads", "1",
            "--data", str(fashion_mnist), "--out", str(tmp_path / "sn"), "--json"]
    stopped = _json(run_cli(*base, "--stop-after", "1"))
    assert stopped["epochs"] == 1 and not stopped["finished"] and "--resume" in stopped["resume_command"]
    done = _json(run_cli(*base, "--resume"))
    assert done["finished"] and done["epochs"] == 2 and 0 <= done["smallest_accuracy"] <= 1
    assert_user_error(run_cli(*base[:4], "--epochs", "3", *base[6:], "--resume"), "epochs")
    assert_user_error(run_cli(*base), "--resume")


def test_the_joint_tunas_search_trains_the_controller_with_the_supernet_then_continues_from_it(tmp_path,
                                                                                              fashion_mnist):
    out = tmp_path / "tunas"
    result = _json(run_cli("nas.search", "--target-ms", "1.2", "--space", str(TINY), "--budget", "smoke",
                           "--algorithm", "tunas", "--samples", "16", "--cpus", "1", "--baselines", "none",
                           "--deploy", "none", "--data", str(fashion_mnist), "--out", str(out), "--json",
                           timeout=600))
    stage = json.loads((out / "pipeline.json").read_text())["done"]["supernet"]
    joint = stage["joint"]
    # smoke: 2 epochs of 32 steps; the controller frozen for the first quarter, then one update a step
    assert stage["steps"] == 64 and joint["warmup_steps"] == 16 and joint["updates"] == 48
    assert json.loads((out / "summary.json").read_text())["proxy"] == "supernet" and result["predicted_ms"] <= 1.2
    searcher = read_state(out / "search" / "searcher.ckpt")["own"]
    # The search's controller went on from the joint one: 48 updates, then one per batch of 16 samples.
    assert searcher["controller"]["updates"] == 48 + 1 and searcher["controller"]["config"]["algorithm"] == "reinforce"


def test_tunas_takes_only_its_own_supernet(tmp_path, fashion_mnist):
    common = ["nas.search", "--target-ms", "1.2", "--space", str(TINY), "--budget", "smoke", "--algorithm", "tunas",
              "--data", str(fashion_mnist), "--out", str(tmp_path / "x")]
    assert_user_error(run_cli(*common, "--proxy", "macs"), "--algorithm", "--proxy supernet")
    assert_user_error(run_cli(*common, "--proxy", "supernet", "--supernet", str(tmp_path)), "--algorithm",
                      "cannot reuse")
    assert not (tmp_path / "x").exists()
