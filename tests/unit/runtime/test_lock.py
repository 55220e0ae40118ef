"""run_lock / lock_file / wait_lock in one process and against small holder processes (no torch)."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from helpers import ROOT
from nas.runtime.errors import UserError
from nas.runtime.lock import hand_down, lock_file, run_lock, wait_lock

HOLDER = textwrap.dedent("""
    import sys, time
    from nas.runtime.lock import run_lock
    with run_lock(sys.argv[1], what="test holder", resume_hint="wait for the test"):
        print("held", flush=True)
        time.sleep(60)
""")


def _holder(directory) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_creates_the_directory_and_records_the_holder(tmp_path):
    run = tmp_path / "a" / "run"
    with run_lock(run, what="search") as path:
        assert path == run / ".lock"
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["what"] == "search" and info["started"] and info["command"]
    assert path.exists() and path.read_text() == ""  # released cleanly: emptied, never unlinked


def test_a_live_holder_is_refused_at_once_with_its_pid(tmp_path):
    proc = _holder(tmp_path)
    try:
        start = time.perf_counter()
        with pytest.raises(UserError) as info:
            with run_lock(tmp_path, resume_hint="rerun with --resume"):
                pass
        # Refused while the holder holds (it does for 60 s), not once it lets go; the bound is 30x slack.
        assert proc.poll() is None and time.perf_counter() - start < 30
        err = info.value
        assert err.source == str(tmp_path)
        assert f"pid {proc.pid}" in str(err) and "test holder" in str(err) and "rerun with --resume" in str(err)
        assert "\n" not in str(err)
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
    proc = _holder(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with caplog.at_level(logging.WARNING, logger="nas.runtime.lock"):
        with run_lock(tmp_path) as path:
            assert json.loads(path.read_text())["pid"] == os.getpid()
    assert f"took over a lock left by pid {proc.pid}" in caplog.text
    assert "no longer running" in caplog.text


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


def test_a_handed_down_lock_is_taken_by_the_child_only(tmp_path):
    path = tmp_path / ".build.lock"
    child = ("import sys; from nas.runtime.lock import lock_file\n"
             "with lock_file(sys.argv[1]): print('child has it')")
    with lock_file(path, what="build"):
        env, fds = hand_down(path)
        ok = subprocess.run([sys.executable, "-c", child, str(path)], cwd=ROOT, env=env, pass_fds=fds,
                            capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and "child has it" in ok.stdout, ok.stderr
        # Without the descriptor the variable alone does not open the lock.
        refused = subprocess.run([sys.executable, "-c", child, str(path)], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "in use by pid" in refused.stderr
        assert json.loads(path.read_text())["pid"] == os.getpid()  # the child left the parent's lock as it was
    with lock_file(path):
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
