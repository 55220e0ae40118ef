"""Where and how a proxy runs: device choice, explicit thread counts, seeding.

Torch-free on import (torch takes ~2 s to load): the commands count CPUs and check flags first."""
from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from nas.runtime.errors import UserError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage reports: nothing leaves the machine
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0: no per-experiment tables on stdout
    # Per-epoch checkpoints of short trials trip this warning by design.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Tune's own Ctrl-C handler ends fit() quietly with the trials so far, which a caller would take
    # for a finished run; without it Ctrl-C is a KeyboardInterrupt, and the command says how to resume.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
}


def available_cpus() -> int:
    """CPUs this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def limit_cpus(n: int) -> int:
    """Keep this process, the threads it starts and its children (a local Ray, ONNX Runtime, torch)
    on the `n` least busy of the CPUs it may use (so that two runs side by side take different
    ones). Call it early: threads that already exist keep their mask."""
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        chosen = allowed
        if n < len(allowed):
            before = cpu_ticks()
            time.sleep(0.2)
            chosen = least_busy(allowed, before, cpu_ticks(), n)
        os.sched_setaffinity(0, chosen)
    import torch  # deferred: torch costs ~2 s at start-up (the module's docstring)

    torch.set_num_threads(n)
    return n


def cpu_ticks(stat: str | None = None) -> dict[int, tuple[int, int]]:
    """{cpu: (busy ticks, all ticks)} from /proc/stat (empty where there is none)."""
    if stat is None:
        try:
            with open("/proc/stat") as f:
                stat = f.read()
        except OSError:
            return {}
    ticks = {}
    for line in stat.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            values = [int(v) for v in fields]
            idle = sum(values[3:5])  # idle and iowait
            ticks[int(name[3:])] = (sum(values[:8]) - idle, sum(values[:8]))  # guest time is inside user
    return ticks


def least_busy(allowed: list[int], before: dict, after: dict, n: int) -> list[int]:
    """The `n` CPUs of `allowed` that were least busy between two `cpu_ticks` snapshots (the
    lowest numbers among equals; an unknown CPU counts as idle)."""
    return sorted(sorted(allowed, key=lambda cpu: (cpu_load(before, after, cpu), cpu))[:n])


def cpu_load(before: dict, after: dict, cpu: int) -> float:
    """The busy share of `cpu` between two `cpu_ticks` snapshots (0 where unknown)."""
    (b0, t0), (b1, t1) = before.get(cpu, (0, 0)), after.get(cpu, (0, 0))
    return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads explicitly (Ray sets OMP_NUM_THREADS per task; torch may not follow)."""
    import torch  # deferred: as above

    n = threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or available_cpus()
    torch.set_num_threads(n)
    return n


def select_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when there is a GPU, else the CPU."""
    import torch  # deferred: as above

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA device is available here", setting="device")
    if name not in ("cpu", "cuda"):
        raise UserError(f"must be auto, cpu or cuda, got {name!r}", setting="device")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed every generator a run might touch; cuDNN picks deterministic kernels."""
    import numpy as np  # deferred: with torch, as above
    import torch  # deferred: as above

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU torch generator for one named stream (e.g. seed, epoch): resumable and order-independent."""
    import numpy as np  # deferred: with torch, as above
    import torch  # deferred: as above

    mixed = np.random.SeedSequence([seed, *stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))


@contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[None]:
    """Ray for a block: the cluster at `address`, or a private local Ray with `cpus` CPUs that listens
    on the loopback interface only, left as it was afterwards; a Ray already initialised (a
    caller's, a test's) is used as it is."""
    import ray  # deferred: Ray takes 1-5 s to load

    for key, value in RAY_ENV.items():  # before any Tuner runs, whoever started Ray
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        yield
        return
    temp_dir = None
    restore = _use_token_if_found() if address else _loopback_only()
    try:
        if address:
            try:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, ValueError, RuntimeError, ray.exceptions.RayError) as err:
                raise UserError(_cannot_connect(address, err), setting="address") from None
        else:
            # Ray keeps Unix sockets in its temp dir, whose paths must stay under 107 bytes.
            temp_dir = tempfile.mkdtemp(prefix="ray_", dir="/tmp")
            try:
                ray.init(num_cpus=cpus or available_cpus(), include_dashboard=False, _temp_dir=temp_dir,
                         log_to_driver=False, logging_level="ERROR")
            except BaseException:
                _remove_when_quiet(temp_dir)
                raise
        private_token()
        try:
            yield
        finally:
            ray.shutdown()
            if temp_dir:
                _remove_when_quiet(temp_dir)
    finally:
        restore()


# Ray gives a node the address `services.get_node_ip_address()` returns: the machine's outward IP,
# unless its cluster mode is off (what it does on macOS and Windows, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0),
# then 127.0.0.1, and gcs_server, the raylet, the workers and the agents then bind to 127.0.0.1 instead
# of all interfaces. `_node_ip_address="127.0.0.1"` alone does not do it: ray.init turns a loopback
# address back into the outward one. Ray reads the variable at import, so the constant is set too.
_CLUSTER_MODE_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _loopback_only():
    """Switch Ray's cluster mode off for a local start; returns what puts it back."""
    try:
        from ray._private import ray_constants  # deferred: Ray takes 1-5 s to load
    except ImportError:
        ray_constants = None
    if ray_constants is None or not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        log.warning("this Ray version has no ENABLE_RAY_CLUSTER switch: the local Ray's gcs_server, raylet "
                    "and workers may listen on all network interfaces")
        return lambda: None
    saved, saved_env = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(_CLUSTER_MODE_VAR)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_CLUSTER_MODE_VAR] = "0"  # for the processes Ray starts, which import it again

    def restore() -> None:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        if saved_env is None:
            os.environ.pop(_CLUSTER_MODE_VAR, None)
        else:
            os.environ[_CLUSTER_MODE_VAR] = saved_env

    return restore


def token_path() -> str:
    return os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")


def private_token(path: str | None = None) -> None:
    """Ray writes its cluster token readable by everyone on the machine (mode 0644); whoever reads
    it can run code on the cluster. Tightened to 0600 when it is this user's; said when it is not."""
    path = path or token_path()
    try:
        st = os.stat(path)
    except OSError:
        return
    if not st.st_mode & 0o077:
        return
    if st.st_uid == os.getuid():
        os.chmod(path, 0o600)
        log.warning("made %s private (0600): it was readable by other users of this machine", path)
    else:
        log.warning("%s is readable by other users of this machine and is not yours to change", path)


def _use_token_if_found():
    """`ray start` (Ray >= 2.5x) turns token authentication on and keeps the token in ~/.ray/auth_token,
    but ray.init(address=...) only sends it when RAY_AUTH_MODE=token: set that when the mode is unset
    and Ray finds a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token). Returns what undoes it."""
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return lambda: None
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # deferred: Ray takes 1-5 s to load
    except ImportError:  # a Ray without token authentication
        return lambda: None
    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        return lambda: None
    private_token()
    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")  # Ray caches its config: let this process see the mode too

    def restore() -> None:
        os.environ.pop("RAY_AUTH_MODE", None)
        Config.initialize("")

    return restore


def _cannot_connect(address: str, err: BaseException) -> str:
    reason = " ".join(str(getattr(err, "message", None) or err).split()) or type(err).__name__
    return (f"cannot connect to Ray at {address!r}: {reason}; check that the cluster is up (`ray status` on "
            f"its head) and reachable from here, and, since `ray start` turns token authentication on, that "
            f"this host has the head's token (copy its ~/.ray/auth_token here, or set RAY_AUTH_TOKEN); a cluster "
            f"started without authentication needs RAY_AUTH_MODE=disabled here too (see docs/cluster.md)")


def _remove_when_quiet(directory: str, attempts: int = 10) -> None:
    """Delete Ray's temporary directory; processes still exiting may write there for a moment."""
    for _ in range(attempts):
        shutil.rmtree(directory, ignore_errors=True)
        if not os.path.exists(directory):
            return
        time.sleep(0.3)
