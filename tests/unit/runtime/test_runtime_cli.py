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
    assert str(on_command_line(UserError("must be >= 1", field="trial_retries"))) == "--trial-retries: must be >= 1"
    kept = UserError("bad", source="run.yaml", field="budget")  # a file's own key stays as it is
    assert on_command_line(kept) is kept
