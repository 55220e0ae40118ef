"""The installed commands (pyproject's [project.scripts]): `nas-search` runs exactly what
`python -m nas.search` runs, with the same one-line errors, exit statuses and Ctrl-C handling."""
from __future__ import annotations

import importlib

from nas.runtime.cli import exit_quietly_on_ctrl_c, run_main


def _run(module: str) -> None:
    # As a command's `__main__` does: Ctrl-C while torch loads is one line, then run_main takes over.
    exit_quietly_on_ctrl_c()
    run_main(importlib.import_module(module).main)


def search() -> None:
    _run("nas.search.__main__")


def inspect() -> None:
    _run("nas.inspect")


def export() -> None:
    _run("nas.export.__main__")


def latency() -> None:
    _run("nas.latency.__main__")


def proxies() -> None:
    _run("nas.proxies.__main__")


def netadapt() -> None:
    _run("nas.netadapt.__main__")
