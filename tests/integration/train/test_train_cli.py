"""`python -m nas.train` as a user runs it: a tiny spec trained for 2 epochs on a few hundred
Fashion-MNIST images writes every output; a stopped run resumes bit-exactly; a resume with other
settings, --init weights of another shape and bad flags are one line, exit 2."""
import json

import pytest
import torch

from helpers import check_user_error, run_cli, run_inprocess
from helpers.data import TINY
from nas.core.spec import save_spec, scale_width
from nas.export.tflite import tflite_available

SMALL_RUN = ["--train-images", "400", "--val-images", "200", "--batch-size", "16", "--epochs", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    save_spec(TINY, path)
    return path


@pytest.fixture(scope="module")
def trained(tiny_spec, fashion_mnist, tmp_path_factory):
    """One uninterrupted 2-epoch run, through the real entry point."""
    out = tmp_path_factory.mktemp("train") / "run"
    proc = run_cli("nas.train", str(tiny_spec), "--data", str(fashion_mnist), *SMALL_RUN, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout.strip().splitlines()[-1])


def _args(tiny_spec, fashion_mnist, out, *extra):
    return ["nas.train", str(tiny_spec), "--data", str(fashion_mnist), *SMALL_RUN, "--out", str(out),
            "--no-progress", *extra]


def test_two_epochs_write_every_output(trained, tiny_spec, tmp_path, capsys):
    out, r = trained
    for key in ("accuracy", "epochs", "checkpoint", "onnx", "tflite", "weights", "wall_s", "seconds_per_epoch",
                "recipe"):
        assert key in r, key
    assert r["finished"] and not r["failed"] and r["epochs"] == 2 and r["steps"] == 2 * (400 // 16)
    assert 0 <= r["accuracy"] <= 1 and r["val_images"] == 200 and r["train_images"] == 400
    assert r["recipe"]["lr"] == pytest.approx(0.1 * 16 / 4096) and r["recipe"]["optimizer"] == "rmsprop"
    assert r["recipe"]["dropout"] == 0.2 and 0 < r["recipe"]["ema_decay"] < 1
    assert r["onnx_max_abs_diff"] <= 1e-4 and r["seconds_per_epoch"] > 0
    if tflite_available():
        assert (out / "model.tflite").stat().st_size > 0 and r["tflite_max_abs_diff"] < 1e-3
    else:
        assert r["tflite"] is None and "tflite" in r["tflite_hint"]
    for name in ("checkpoint.pt", "weights.pt", "spec.yaml", "model.onnx", "train.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "train.json").read_text())["accuracy"] == r["accuracy"]
    assert not list(out.glob(".*.tmp*"))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and set(ckpt) >= {"model", "ema", "optimizer", "scheduler", "rng", "data_order_seed"}
    # the EMA weights load into the spec as trained, as `python -m nas.export` loads them
    code, stdout, err = run_inprocess(["nas.export", str(out / "spec.yaml"), "--weights", str(out / "weights.pt"),
                                       "--onnx", str(tmp_path / "again.onnx"), "--verify", "--no-time", "--json"],
                                      capsys)
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["verified"]


def test_stopped_run_resumes_bit_exactly(trained, tiny_spec, fashion_mnist, tmp_path, capsys):
    out = tmp_path / "stopped"
    code, stdout, err = run_inprocess(_args(tiny_spec, fashion_mnist, out, "--stop-after", "1", "--json"), capsys)
    assert code == 0, err
    stopped = json.loads(stdout.strip().splitlines()[-1])
    assert not stopped["finished"] and stopped["epochs"] == 1 and "--resume" in stopped["resume_command"]
    assert "--stop-after" not in stopped["resume_command"] and not (out / "weights.pt").exists()
    code, stdout, err = run_inprocess(_args(tiny_spec, fashion_mnist, out, "--resume", "--json"), capsys)
    assert code == 0, err
    resumed = json.loads(stdout.strip().splitlines()[-1])
    whole, _ = trained
    a = torch.load(whole / "checkpoint.pt", weights_only=True)
    b = torch.load(out / "checkpoint.pt", weights_only=True)
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert torch.equal(a["optimizer"]["state"][0]["square_avg"], b["optimizer"]["state"][0]["square_avg"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 50
    wa, wb = torch.load(whole / "weights.pt", weights_only=True), torch.load(out / "weights.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed["accuracy"] == trained[1]["accuracy"]


def test_resume_refuses_other_settings(tiny_spec, fashion_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_inprocess(_args(tiny_spec, fashion_mnist, out, "--resume"), capsys)
    check_user_error(code, err, "nothing to resume", "--resume")
    code, _, err = run_inprocess(_args(tiny_spec, fashion_mnist, out, "--stop-after", "1"), capsys)
    assert code == 0, err
    before = (out / "checkpoint.pt").read_bytes()
    for extra, needle in ((["--epochs", "3"], "epochs"), (["--seed", "1"], "seed"),
                          (["--batch-size", "20"], "batch_size"), (["--train-images", "300"], "train_images")):
        code, _, err = run_inprocess(_args(tiny_spec, fashion_mnist, out, "--resume", *extra), capsys)
        check_user_error(code, err, "checkpoint.pt", f"{needle}:", "another --out")
    code, _, err = run_inprocess(_args(tiny_spec, fashion_mnist, out), capsys)  # without --resume
    check_user_error(code, err, "holds a training already", "--resume")
    assert (out / "checkpoint.pt").read_bytes() == before  # nothing was written by a refused run


def test_init_with_weights_of_another_shape(tiny_spec, fashion_mnist, tmp_path, capsys):
    from nas.core.model import build_model
    from nas.accuracy.short_training import adapt_spec

    wide = adapt_spec(scale_width(TINY, 2.0), 10, 32)
    torch.save(build_model(wide).state_dict(), tmp_path / "wide.pt")
    out = tmp_path / "run"
    code, _, err = run_inprocess(_args(tiny_spec, fashion_mnist, out, "--init", str(tmp_path / "wide.pt")), capsys)
    check_user_error(code, err, "wide.pt", "--init", "stem.0.weight", "has shape", "spec adapted to fashion-mnist")
    assert not out.exists()
    fit = adapt_spec(TINY, 10, 32)
    torch.save({"model": build_model(fit).state_dict()}, tmp_path / "fit.pt")  # a checkpoint holding a model
    code, stdout, err = run_inprocess(_args(tiny_spec, fashion_mnist, out, "--init", str(tmp_path / "fit.pt"),
                                            "--stop-after", "1", "--json"), capsys)
    assert code == 0, err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["identity"]["init"]


@pytest.mark.parametrize("extra, needles", [
    (["--epochs", "0"], ("--epochs",)),
    (["--batch-size", "30", "--workers", "4"], ("--batch-size", "multiple of 4")),
    (["--batch-size", "1000"], ("--batch-size", "fewer than one batch")),
    (["--data", "/nonexistent/data"], ("/nonexistent/data", "--data")),
    (["--init", "/nonexistent/w.pt"], ("/nonexistent/w.pt", "--init")),
    (["--device", "tpu"], ("--device",)),
    (["--resolution", "4"], ("--resolution",)),
])
def test_bad_input_is_one_line(extra, needles, tiny_spec, fashion_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_inprocess([*_args(tiny_spec, fashion_mnist, out), *extra], capsys)
    check_user_error(code, err, *needles)
    assert not out.exists()


def test_missing_spec_is_one_line(capsys, tmp_path):
    code, _, err = run_inprocess(["nas.train", str(tmp_path / "none.yaml")], capsys)
    check_user_error(code, err, "none.yaml", "not found")


@pytest.mark.parametrize("settings, line", [
    ("batch_size: 1000\n", "batch_size: 400 training images are fewer than one batch of 1000"),  # the library's
    ("resolution: 4\n", "resolution: "),  # the data config's check
    ("epochs: 0\n", "epochs: must be an integer > 0, got '0'"),  # the flag's own type
])
def test_a_bad_setting_from_a_config_file_names_the_file_and_key(settings, line, tiny_spec, fashion_mnist,
                                                                 tmp_path, capsys):
    """`--config FILE` on nas.train: the file's values under the flags typed after them, and an error
    about one, wherever it is caught, is the file and key, not the flag."""
    config = tmp_path / "train.yaml"
    config.write_text(settings)
    out = tmp_path / "run"
    args = _args(tiny_spec, fashion_mnist, out)
    flag = "--" + settings.split(":")[0].replace("_", "-")
    if flag in args:  # the file's key, not given again as a flag (a flag would win)
        del args[args.index(flag):args.index(flag) + 2]
    code, _, err = run_inprocess([*args, "--config", str(config)], capsys)
    check_user_error(code, err, f"{config}: {line}")
    assert "--" not in err.split(str(config))[1].split(":")[1] and not out.exists()
