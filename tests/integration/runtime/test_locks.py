"""Run locks as a user meets them: a second command on a busy table or run directory exits 2 at once
with one line naming the holder; a table build hands its lock to the calibration process it starts."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import ROOT, assert_user_error, check_user_error, run_cli, run_inprocess

TINY_SPACE = str(ROOT / "tests" / "data" / "tiny_space.yaml")
HOLDER = textwrap.dedent("""
    import sys, time
    from nas.runtime.lock import lock_file, run_lock
    kind, target = sys.argv[1:3]
    if kind == "table":
        from nas.latency.table import build_lock_path
        held = lock_file(build_lock_path(target), what="latency table build")
    else:
        held = run_lock(target, what="proxy audit")
    with held:
        print("held", flush=True)
        time.sleep(120)
""")


def _holder(kind: str, target) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_build_of_a_table_is_refused_at_once(tmp_path, capsys):
    """The holder is another process; the refused command runs in this one (no torch import to wait for)."""
    table = tmp_path / "host.yaml"
    holder = _holder("table", table)
    try:
        code, _, err = run_inprocess(["nas.latency", "build", "--space", TINY_SPACE, "--table", str(table)], capsys)
        check_user_error(code, err, str(table), f"pid {holder.pid}", "latency table build", "measures only what")
        assert holder.poll() is None  # refused while the holder holds (it sleeps 120 s), not a wait for it
        assert not table.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_second_audit_in_one_directory_is_refused_at_once(tmp_path):
    """The real entry point, against a lock another process holds."""
    out = tmp_path / "audit"
    holder = _holder("run", out)
    try:
        proc = run_cli("nas.proxies", "audit", "--space", TINY_SPACE, "--samples", "3", "--budget", "smoke",
                       "--out", str(out), timeout=120)
        assert_user_error(proc, str(out), f"pid {holder.pid}", "proxy audit", "resumes")
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written beside the lock
    finally:
        holder.kill()
        holder.wait()


def test_a_bad_space_leaves_no_lock_behind(tmp_path, capsys):
    out = tmp_path / "audit"
    code, _, err = run_inprocess(["nas.proxies", "audit", "--space", "no_such_space", "--samples", "3", "--out",
                                  str(out)], capsys)
    check_user_error(code, err, "no_such_space")
    assert not out.exists()
