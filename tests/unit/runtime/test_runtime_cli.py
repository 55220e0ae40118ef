"""The command frame's helpers that are not about flags."""
from __future__ import annotations

import os
import signal

import pytest

from nas.runtime.cli import on_command_line, signals_held
from nas.runtime.errors import UserError


def test_a_signal_during_a_held_block_arrives_after_it():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                os.kill(os.getpid(), signal.SIGINT)
                signal.getsignal(signal.SIGINT)  # the recorder, not the default handler, took it
                done.append("the save and its hint")
        assert done == ["the save and its hint"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_library_errors_key_is_shown_as_its_flag():
    assert str(on_command_line(UserError("must be >= 1", setting="trial_retries"))) == "--trial-retries: must be >= 1"
    named = UserError("no such directory", source="/data/x", setting="data")  # the file the value named, first
    assert (str(named), str(on_command_line(named))) == ("/data/x: data: no such directory",
                                                         "/data/x: --data: no such directory")
    kept = UserError("bad", source="run.yaml", field="budget")  # a file's own key stays as it is
    assert on_command_line(kept) is kept


def test_a_library_error_names_the_key_and_the_command_prints_the_flag(capsys, tmp_path):
    from helpers import run_inprocess
    from nas.audit.imagenet import ImageNetAuditConfig

    with pytest.raises(UserError) as err:
        ImageNetAuditConfig(proxies=("naswot", "oracle"))
    assert (err.value.setting, err.value.field, err.value.source) == ("proxies", None, None)
    assert str(err.value).startswith("proxies: unknown proxy 'oracle'") and "--" not in str(err.value)
    code, _, stderr = run_inprocess(["nas.proxies", "imagenet-audit", "--out", str(tmp_path / "o"),
                                     "--proxies", "naswot,oracle"], capsys)
    assert (code, stderr) == (2, f"error: --{str(err.value)}\n")


# The command-line modules: a command's own `__main__.py` (its flags are its to name) and this frame
# (nas/runtime/cli.py, which shows a setting as its flag). Every other module is library code, run
# from Python as well: an error there names a setting by its key (`setting="target_ms"`), never a flag.
COMMAND_LINE_MODULES = ("nas/*/__main__.py", "nas/runtime/cli.py")


def test_library_code_names_no_flag_as_an_errors_field_or_setting():
    import ast
    from pathlib import Path

    def flags(expr) -> list[int]:  # where a string in `expr` starts with "--" (f-strings and x if c else y too)
        return [c.lineno for c in ast.walk(expr) if isinstance(c, ast.Constant) and str(c.value).startswith("--")]

    root = Path(__file__).resolve().parents[2]
    found = []
    for path in sorted((root / "nas").rglob("*.py")):
        rel = path.relative_to(root)
        if any(rel.match(pattern) for pattern in COMMAND_LINE_MODULES):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(rel))):
            if isinstance(node, ast.Call):  # UserError(..., field="--data"), load_state(p, setting="--init")
                given = [k.value for k in node.keywords if k.arg in ("field", "setting")]
            elif isinstance(node, ast.arguments):  # def read_checkpoint(path, field="--supernet")
                params = [*node.posonlyargs, *node.args]
                given = [d for a, d in [*zip(params[len(params) - len(node.defaults):], node.defaults),
                                        *zip(node.kwonlyargs, node.kw_defaults)]
                         if d is not None and a.arg in ("field", "setting")]
            else:
                continue
            found += [f"{rel}:{line}" for expr in given for line in flags(expr)]
    assert not found, f"a flag where a setting's key belongs (setting=\"data\", not field=\"--data\"): {found}"
