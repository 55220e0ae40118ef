"""The installed commands (pyproject's [project.scripts]): `nas-search` runs exactly what
`python -m nas.search` runs, with the same one-line errors, exit statuses and Ctrl-C handling."""
from __future__ import annotations

import importlib
from typing import Callable

from nas.runtime.cli import exit_quietly_on_ctrl_c, run_main


def _command(module: str) -> Callable[[], None]:
    def run() -> None:
        # As a command's `__main__` does: Ctrl-C while torch loads is one line, then run_main takes over.
        exit_quietly_on_ctrl_c()
        run_main(importlib.import_module(module).main)
    return run


search = _command("nas.search.__main__")
inspect = _command("nas.inspect")
export = _command("nas.export.__main__")
latency = _command("nas.latency.__main__")
proxies = _command("nas.proxies.__main__")
netadapt = _command("nas.netadapt.__main__")
train = _command("nas.train.__main__")
supernet = _command("nas.supernet.__main__")
