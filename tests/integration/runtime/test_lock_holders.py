"""run_lock / lock_file against small holder processes (no torch): a live holder refuses, a killed one's
lock is taken over, a handed-down lock opens in the child only."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from helpers import ROOT
from nas.runtime.errors import UserError
from nas.runtime.lock import hand_down, lock_file, run_lock

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


def test_a_live_holder_is_refused_at_once_with_its_pid(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(UserError) as info:
            with run_lock(tmp_path, resume_hint="rerun with --resume"):
                pass
        assert proc.poll() is None  # refused while the holder holds (it does for 60 s), not once it lets go
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
