"""`--config FILE` on every command but the search (which has its run config): defaults <- the file
<- flags, each file value through its flag's own check, an error naming the file and key."""
from __future__ import annotations

import pytest

from nas.runtime import cli
from nas.runtime.cli import ArgumentParser, on_command_line, positive_int, run_main
from nas.runtime.errors import UserError


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="prog", config_file=True)
    p.add_argument("spec")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--device", choices=("auto", "cpu"), default="auto")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--proxies", nargs="+", default=["a"])
    return p


@pytest.fixture(autouse=True)
def _no_origins_left(monkeypatch):
    monkeypatch.setattr(cli, "_origins", {})


def _file(tmp_path, text):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return str(path)


def test_a_files_values_fill_what_the_flags_did_not_give(tmp_path):
    path = _file(tmp_path, "epochs: 3\nbatch_size: 64\nresume: true\nproxies: [x, y]\n")
    args = _parser().parse_args(["s.yaml", "--config", path, "--epochs", "5"])
    assert (args.epochs, args.batch_size, args.resume, args.proxies, args.device) == (5, 64, True, ["x", "y"], "auto")
    assert cli._origins == {k: (path, k) for k in ("batch_size", "resume", "proxies")}  # not epochs: the flag's


def test_a_flag_equal_to_its_default_still_overrides_the_file(tmp_path):
    path = _file(tmp_path, "epochs: 3\n")
    assert _parser().parse_args(["s.yaml", "--epochs", "10", "--config", path]).epochs == 10


@pytest.mark.parametrize("text, message", [
    ("epochs: 0\n", "settings.yaml: epochs: must be an integer > 0, got '0'"),
    ("epochs: 2.5\n", "settings.yaml: epochs: not an integer: '2.5'"),
    ("device: gpu\n", "settings.yaml: device: must be one of auto, cpu, got 'gpu'"),
    ("resume: 1\n", "settings.yaml: resume: must be true or false, got 1"),
    ("batch_size: [1, 2]\n", "settings.yaml: batch_size: must be one value, got [1, 2]"),
    ("epochs:\n", "settings.yaml: epochs: must be a value for --epochs, got None"),
    ("epoch: 3\n", "settings.yaml: epoch: unknown key (allowed: epochs, batch_size, device, resume, proxies)"),
    ("verbosity: 2\n", "settings.yaml: verbosity: unknown key"),
    ("- epochs\n", "settings.yaml: expected a mapping of settings"),
])
def test_a_bad_value_in_the_file_is_one_error_naming_the_file_and_key(tmp_path, text, message):
    path = _file(tmp_path, text)
    with pytest.raises(UserError) as err:
        _parser().parse_args(["s.yaml", "--config", path])
    assert message in str(err.value) and str(err.value).startswith(path)


def test_a_bad_flag_beside_the_file_is_still_the_flags_error(tmp_path, capsys):
    path = _file(tmp_path, "epochs: 3\n")
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(["s.yaml", "--config", path, "--epochs", "0"])
    assert stop.value.code == 2 and "argument --epochs: must be an integer > 0" in capsys.readouterr().err


def test_a_library_error_about_a_files_setting_names_the_file_and_key(tmp_path, capsys):
    path = _file(tmp_path, "batch_size: 64\n")

    def main(argv):
        _parser().parse_args(argv)
        raise UserError("fewer training images than one batch of 64", setting="batch_size")

    with pytest.raises(SystemExit) as stop:
        run_main(main, ["s.yaml", "--config", path])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {path}: batch_size: fewer training images than one batch of 64"
    # the same error with the value from a flag names the flag
    assert str(on_command_line(UserError("x", setting="epochs"))) == "--epochs: x"


def test_a_subcommands_file_sets_its_own_flags(tmp_path):
    top = ArgumentParser(prog="prog")
    sub = top.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", config_file=True)
    train.add_argument("--epochs", type=positive_int, default=1)
    sub.add_parser("score").add_argument("--batch", type=positive_int, default=2)
    args = top.parse_args(["train", "--config", _file(tmp_path, "epochs: 4\n")])
    assert (args.command, args.epochs) == ("train", 4)
    with pytest.raises(UserError, match="batch: unknown key"):  # another subcommand's flag is not this one's
        top.parse_args(["train", "--config", _file(tmp_path, "batch: 4\n")])


def test_every_command_but_the_search_takes_a_config_file():
    """The search has its own run config (nas.pipeline.run_config); every other command that trains,
    measures or exports takes `--config` through the one mechanism."""
    from nas.export.__main__ import _parser as export
    from nas.latency.__main__ import _parser as latency
    from nas.netadapt.__main__ import _parser as netadapt
    from nas.proxies.__main__ import _parser as proxies
    from nas.supernet.__main__ import _parser as supernet
    from nas.train.__main__ import _parser as train

    for make in (export, netadapt, train):
        assert make()._config_file, make
    for make in (latency, proxies, supernet):
        subs = next(a for a in make()._actions if a.dest == "command").choices
        assert all(p._config_file for p in subs.values() if "--config" in p._option_string_actions)
        assert sum(p._config_file for p in subs.values()) >= 3, make
