"""Run locks: one process at a time works in a run directory (a search, NetAdapt, an audit) or builds
a latency table; a second one is refused at once with a line naming the holder.

The lock is `fcntl.flock` on a file kept open for the block. The kernel releases it when the holder
exits in any way (SIGKILL included), so a lock left by a killed process is simply taken over; the
file's content (pid, host, start time, command) only says who holds it, and is emptied on a clean
release so that a leftover one reveals a holder that died. Nothing is ever unlinked: deleting a lock
file while another process is about to open it would give the two of them different locks.

flock belongs to an open file description, not to a process: one process that takes the same lock
twice (two opens) is refused by itself, so `lock_file` raises RuntimeError for that bug instead.
A child started with `hand_down(...)` shares its parent's open file and may take the lock again.
Locks on network file systems (NFS) are only as good as the server's flock support.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nas.runtime.errors import UserError
from nas.runtime.files import open_no_follow

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
# "FD:PATH" of a lock a parent holds on behalf of the child it started (see hand_down).
_HANDED_DOWN = "NAS_HANDED_DOWN_LOCK"
_held: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of each lock file this process holds -> fd


@contextmanager
def run_lock(directory: str | os.PathLike, *, what: str = "run",
             resume_hint: str | None = None) -> Iterator[Path]:
    """Hold `<directory>/.lock` for the block (creating the directory); yields the lock file's path.

    Another live holder: a UserError naming its pid, what it runs and since when, and `resume_hint`
    (how to wait or resume), so the command exits 2 at once."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the directory: {err.strerror or err}", source=str(directory)) from None
    if not directory.is_dir():
        raise UserError("exists and is not a directory", source=str(directory))
    with lock_file(directory / LOCK_NAME, what=what, resume_hint=resume_hint, source=str(directory)) as path:
        _remove_stale_temporaries(directory)
        yield path


def _remove_stale_temporaries(directory: Path) -> None:
    """The `.NAME.tmpPID` files (nas.runtime.files.atomic_write) of writers that died between write
    and rename, as a kill -9 leaves them: the lock's holder is the directory's only writer now, and
    no later write of the same name comes from that pid to replace them."""
    for tmp in directory.rglob(".*.tmp*"):
        pid = tmp.name.rpartition(".tmp")[2]
        if not pid.isdigit() or tmp.is_dir() or _alive(int(pid), None):
            continue
        try:
            tmp.unlink()
            log.debug("removed %s, left by process %s", tmp, pid)
        except OSError:
            pass  # another file system's rules: the next write of that name still works


@contextmanager
def lock_file(path: str | os.PathLike, *, what: str = "run", resume_hint: str | None = None,
              source: str | None = None) -> Iterator[Path]:
    """Hold the lock file `path` itself (its folder must exist); as `run_lock`, errors blame `source`."""
    path = Path(path)
    source = source or str(path)
    try:
        fd = open_no_follow(path, os.O_RDWR | os.O_CREAT)
    except OSError as err:
        raise UserError(f"cannot open its lock file {path.name}: {err.strerror or err}", source=source) from None
    key = _identity(fd)
    if key in _held:
        os.close(fd)
        raise RuntimeError(f"{path} is already locked by this process (flock is per open file: take it once)")
    inherited = _inherited_fd(path, key)
    if inherited is not None:  # the parent holds it for us: share its open file, leave it to release
        os.close(fd)
        _held[key] = inherited
        try:
            yield path
        finally:
            del _held[key]
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = _read_holder(fd)
        os.close(fd)
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UserError(f"cannot lock {path.name}: {err.strerror or err}", source=source) from None
        raise UserError(_busy_message(holder, resume_hint), source=source) from None
    try:
        left = _read_holder(fd)
        if left:
            alive = _alive(left.get("pid"), left.get("host"))
            log.warning("took over a lock left by pid %s (%s started %s)%s", left.get("pid", "?"),
                        left.get("what", "a run"), left.get("started", "?"),
                        "" if alive else ", which is no longer running")
        try:
            _write_holder(fd, what)
        except OSError as err:  # a full disk: the lock is still held, its note could not be written
            raise UserError(f"cannot write its lock file {path.name}: {err.strerror or err}", source=source) from None
        _held[key] = fd
        try:
            yield path
        finally:
            del _held[key]
            os.ftruncate(fd, 0)  # released cleanly: a non-empty file later means a holder that died
    finally:
        os.close(fd)  # closing the last descriptor of the open file releases the flock


@contextmanager
def wait_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold `path` for a short critical section (a read-merge-write), waiting for whoever holds it."""
    path = Path(path)
    try:
        fd = open_no_follow(path, os.O_RDWR | os.O_CREAT)
    except OSError as err:
        raise UserError(f"cannot open its lock file {path.name}: {err.strerror or err}", source=str(path)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def hand_down(path: str | os.PathLike) -> tuple[dict[str, str], tuple[int, ...]]:
    """(env, pass_fds) for a subprocess that reruns this command under the lock `path` this process
    holds: the child shares the open file, so its own `lock_file(path)` succeeds instead of refusing."""
    fd = _held.get(_identity_of(Path(path)))
    if fd is None:
        raise RuntimeError(f"{path} is not locked by this process")
    return {**os.environ, _HANDED_DOWN: f"{fd}:{os.path.abspath(path)}"}, (fd,)


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _identity_of(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _inherited_fd(path: Path, key: tuple[int, int]) -> int | None:
    """The descriptor of `path` a parent handed down (same file, already holding the flock), if any."""
    fd_text, _, named = os.environ.get(_HANDED_DOWN, "").partition(":")
    if not fd_text.isdigit() or named != os.path.abspath(path):
        return None
    fd = int(fd_text)
    try:
        if _identity(fd) != key:
            return None
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds only on the open file that holds it
    except OSError:
        return None
    return fd


def _write_holder(fd: int, what: str) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": shlex.join([sys.executable, *sys.argv])}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)


def _read_holder(fd: int) -> dict:
    """The holder's info; empty if none was written (released cleanly) or it is being written."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        info = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _alive(pid, host) -> bool:
    if not isinstance(pid, int) or (host and host != socket.gethostname()):
        return True  # another machine's process: cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy_message(holder: dict, resume_hint: str | None) -> str:
    if holder:
        command = holder.get("command", "")
        command = command if len(command) <= 160 else command[:157] + "..."
        who = (f"in use by pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
               f"({holder.get('what', 'a run')} started {holder.get('started', '?')}: {command})")
    else:
        who = "in use by another process (it is just starting)"
    hint = resume_hint or "wait for it to finish, or stop it and run this command again"
    return " ".join(f"{who}; {hint}".split())  # one line whatever the command held
