"""docs/design.md's table of commands cannot drift: each row's flags are its command's parser's,
both ways (the flags every command shares are named once, under the table)."""
from __future__ import annotations

import argparse
import importlib
import re

import pytest

from helpers import ROOT

PAGE = ROOT / "docs" / "design.md"
SHARED = {"-h", "--help", "-q", "--quiet", "-v", "--verbose", "--json", "--config", "--max-params", "--max-macs"}


def _rows() -> list[tuple[str, str]]:
    lines = PAGE.read_text().split("| command | flags | `--json` keys |", 1)[1].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        command, flags, _ = (c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|")))
        rows.append((command.strip("`"), flags))
    return rows


def _parser(command: str) -> argparse.ArgumentParser:
    words = command.split()
    module = importlib.import_module(words[0] if words[0] == "nas.inspect" else f"{words[0]}.__main__")
    parser = (getattr(module, "_parser", None) or module.parser)()
    if len(words) > 1 and words[1].islower():  # a subcommand (not SPEC)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[words[1]]
    return parser


def test_the_table_names_every_command_and_subcommand():
    commands = {c for c, _ in _rows()}
    for name in ("nas.latency", "nas.proxies", "nas.supernet"):
        sub = next(a for a in _parser(name)._actions if isinstance(a, argparse._SubParsersAction))
        assert {f"{name} {s}" for s in sub.choices} <= {" ".join(c.split()[:2]) for c in commands}, name
    assert {"nas.search", "nas.netadapt"} <= commands


@pytest.mark.parametrize("command, flags", _rows(), ids=[c for c, _ in _rows()])
def test_a_rows_flags_are_its_commands_flags(command, flags):
    documented = set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", flags)) - SHARED
    parser_flags = {o for a in _parser(command)._actions for o in a.option_strings} - SHARED
    assert documented - parser_flags == set(), "documented, but the command has no such flag"
    assert parser_flags - documented == set(), "a flag the table does not list"
