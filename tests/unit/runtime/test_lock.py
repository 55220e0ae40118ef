"""run_lock and wait_lock in one process (against holder processes:
tests/integration/runtime/test_lock_holders.py)."""
from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest

from nas.runtime.errors import UserError
from nas.runtime.lock import run_lock, wait_lock


def test_lock_creates_the_directory_and_records_the_holder(tmp_path):
    run = tmp_path / "a" / "run"
    with run_lock(run, what="search") as path:
        assert path == run / ".lock"
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["what"] == "search" and info["started"] and info["command"]
    assert path.exists() and path.read_text() == ""  # released cleanly: emptied, never unlinked


def test_a_clean_release_leaves_no_warning(tmp_path, caplog):
    with run_lock(tmp_path):
        pass
    with caplog.at_level(logging.WARNING, logger="nas.runtime.lock"):
        with run_lock(tmp_path):
            pass
    assert "took over" not in caplog.text


def test_taking_the_same_lock_twice_in_one_process_is_a_bug(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RuntimeError, match="already locked by this process"):
            with run_lock(tmp_path):
                pass
    with run_lock(tmp_path):  # the failed attempt did not release or break the first
        pass


def test_a_file_in_the_way_is_a_user_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="cannot create the directory"):
        with run_lock(tmp_path / "f"):
            pass


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(ValueError):
        with run_lock(tmp_path):
            raise ValueError("boom")
    with run_lock(tmp_path):
        pass


def test_wait_lock_serialises_critical_sections(tmp_path):
    path = tmp_path / ".t.lock"
    inside, order = threading.Event(), []

    def other():
        with wait_lock(path):
            inside.set()
            time.sleep(0.3)
            order.append("other")

    t = threading.Thread(target=other)
    t.start()
    inside.wait(5)
    with wait_lock(path):  # waits for the thread's section to end
        order.append("main")
    t.join()
    assert order == ["other", "main"]


def test_taking_a_run_lock_removes_the_temporaries_of_dead_writers(tmp_path):
    """A kill -9 between an atomic write and its rename leaves `.NAME.tmpPID`; whoever takes the run's
    lock next removes it (it is the only writer), but not a live process's, nor anything else."""
    dead = 2**22 + 12345  # above the kernel's pid_max default of 4,194,304: no such process
    (tmp_path / "search").mkdir()
    stale = [tmp_path / f".pipeline.json.tmp{dead}", tmp_path / "search" / f".samples.jsonl.tmp{dead}"]
    kept = [tmp_path / f".live.json.tmp{os.getpid()}", tmp_path / "notes.tmp1", tmp_path / "pipeline.json"]
    for path in stale + kept:
        path.write_text("{}")
    with run_lock(tmp_path):
        assert [p.exists() for p in stale] == [False, False]
        assert all(p.exists() for p in kept)
