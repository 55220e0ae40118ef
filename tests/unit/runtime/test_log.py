"""Logging: one stderr handler on `nas`, --quiet / --verbose on every command, errors stay one line."""
import logging

import pytest

from nas.runtime import log as nas_log
from nas.runtime.cli import ArgumentParser, run_main
from nas.runtime.errors import UserError

log = logging.getLogger("nas.tests.log")


@pytest.fixture(autouse=True)
def _back_to_normal():
    yield
    nas_log.setup_logging(nas_log.NORMAL)


def _handlers():
    return [h for lg in (logging.getLogger("nas"), logging.getLogger()) for h in lg.handlers
            if isinstance(h, nas_log._StderrHandler)]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_setup_is_idempotent_and_writes_to_the_current_stderr(capsys):
    for verbosity in (0, 1, -1, 0, 0):
        nas_log.setup_logging(verbosity)
    assert len(_handlers()) == 1
    log.info("one line")
    assert capsys.readouterr().err == "[nas] one line\n"  # capsys swapped sys.stderr after the handler was made


@pytest.mark.parametrize("verbosity, shown, hidden", [
    (nas_log.QUIET, ["warning: careful", "error: broken"], ["said", "detail"]),
    (nas_log.NORMAL, ["[nas] said", "warning: careful", "error: broken"], ["detail"]),
    (nas_log.VERBOSE, ["INFO    nas.tests.log: said", "DEBUG   nas.tests.log: detail", "WARNING nas.tests.log: careful"], []),
])
def test_levels(capsys, verbosity, shown, hidden):
    nas_log.setup_logging(verbosity)
    log.debug("detail")
    log.info("said")
    log.warning("careful")
    log.error("broken")
    err = capsys.readouterr().err
    for text in shown:
        assert text in err, err
    for text in hidden:
        assert text not in err, err
    assert nas_log.progress_enabled() == (verbosity != nas_log.QUIET)


def test_very_verbose_shows_other_libraries_info_and_goes_back(capsys):
    other = logging.getLogger("somelib.sub")
    root_level = logging.getLogger().level
    nas_log.setup_logging(nas_log.EVERYTHING)
    other.info("library says")
    log.debug("ours")
    assert len(_handlers()) == 1
    err = capsys.readouterr().err
    assert "INFO    somelib.sub: library says" in err and "DEBUG   nas.tests.log: ours" in err
    assert err.count("ours") == 1  # not printed again by the root handler
    for verbosity in (nas_log.VERBOSE, nas_log.NORMAL):
        nas_log.setup_logging(verbosity)
        other.info("library says")
        log.info("ours")
        assert len(_handlers()) == 1 and logging.getLogger().level == root_level
        err = capsys.readouterr().err
        assert "library says" not in err and err.count("ours") == 1


def test_short_format_has_no_traceback(capsys):
    nas_log.setup_logging(nas_log.NORMAL)
    try:
        raise ValueError("inner")
    except ValueError:
        log.exception("went wrong")
    assert _lines(capsys.readouterr().err) == ["error: went wrong"]


def test_log_lines_go_above_a_running_progress_bar(capsys):
    from tqdm import tqdm

    nas_log.setup_logging(nas_log.NORMAL)
    with tqdm(total=3, desc="bar", file=None) as bar:
        log.info("between updates")
        bar.update()
    assert "[nas] between updates\n" in capsys.readouterr().err


def _parser():
    p = ArgumentParser(prog="prog")
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    sub.add_parser("run").add_argument("--n", type=int, default=1)
    return p


@pytest.mark.parametrize("argv, verbosity, level", [
    (["run"], 0, logging.INFO),
    (["--quiet", "run"], -1, logging.WARNING),
    (["run", "--quiet"], -1, logging.WARNING),
    (["-q", "run", "--n", "3"], -1, logging.WARNING),
    (["--verbose", "run"], 1, logging.DEBUG),
    (["run", "-v"], 1, logging.DEBUG),
    (["-v", "run", "-vv"], 2, logging.DEBUG),
])
def test_flags_before_or_after_the_subcommand(argv, verbosity, level):
    args = _parser().parse_args(argv)
    assert args.verbosity == verbosity and args.command == "run"
    assert logging.getLogger("nas").level == level  # parsing set logging up


def test_quiet_and_verbose_together_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(["run", "--quiet", "--verbose"])
    assert stop.value.code == 2
    assert len(_lines(capsys.readouterr().err)) == 1


@pytest.mark.parametrize("flag", ["--verbose", "--quiet", None])
def test_a_user_error_stays_one_line(capsys, flag):
    def main(argv):
        args = ArgumentParser(prog="prog").parse_args(argv)
        log.debug("about to fail")  # only this process's debug; the command itself logs nothing first
        raise UserError("bad value", source="f.yaml", field="x")

    with pytest.raises(SystemExit) as stop:
        run_main(main, [flag] if flag else [])
    assert stop.value.code == 2
    err = _lines(capsys.readouterr().err)
    assert err[-1].startswith("error: ") and "f.yaml" in err[-1] and "Traceback" not in "".join(err)
    assert len(err) == (2 if flag == "--verbose" else 1)


def _help(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    return capsys.readouterr().out


COMMANDS = {
    "nas.inspect": [[]],
    "nas.export": [[]],
    "nas.netadapt": [[]],
    "nas.search": [[]],
    "nas.latency": [[], ["build"], ["validate"], ["export-ops"], ["import"], ["calibrate"]],
    "nas.proxies": [[], ["train"], ["score"], ["audit"]],
}


@pytest.mark.parametrize("module, sub", [(m, s) for m, subs in COMMANDS.items() for s in subs],
                         ids=lambda v: v if isinstance(v, str) else " ".join(v) or "-")
def test_every_command_and_subcommand_takes_quiet_and_verbose(module, sub, capsys):
    import importlib

    main = importlib.import_module(module if module == "nas.inspect" else module + ".__main__").main
    out = _help(main, [*sub, "--quiet", "--help"], capsys)
    assert "--quiet" in out and "--verbose" in out
