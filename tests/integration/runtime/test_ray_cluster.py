"""Ray as the commands use it: the private local Ray listens on loopback only; --address joins a
cluster started with `ray start` (head + a second node, token authentication on) out of the box."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from helpers import ROOT
from helpers.data import write_idx_dataset
from helpers.interrupt import process_tree

ray = pytest.importorskip("ray")
RAY_CLI = Path(sys.executable).with_name("ray")


# ---- listening sockets of a process tree, from /proc --------------------------------------------

def _address(hex_address: str) -> tuple[str, int]:
    ip, port = hex_address.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # four host-order 32-bit words
    return socket.inet_ntop(socket.AF_INET6, raw), int(port, 16)


def listening_sockets(root: int) -> list[tuple[str, int, str, int]]:
    """(command, pid, ip, port) of every TCP socket listened on by `root` and its descendants."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    listening[fields[9]] = _address(fields[1])
    found = set()
    for pid in process_tree(root):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            inode = link[len("socket:["):-1] if link.startswith("socket:[") else None
            if inode in listening:
                found.add((comm, pid, *listening[inode]))
    return sorted(found)


def _loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1") or ip.startswith("::ffff:127.")


def test_the_private_local_ray_listens_on_loopback_only():
    from nas.runtime.session import ray_session

    with ray_session(cpus=1):
        @ray.remote
        def pid() -> int:
            return os.getpid()

        assert ray.get([pid.remote() for _ in range(2)])  # a worker has started and serves
        sockets = listening_sockets(os.getpid())
    names = {s[0] for s in sockets}
    assert "gcs_server" in names and "raylet" in names, sockets
    wide = [s for s in sockets if not _loopback(s[2])]
    assert not wide, f"listening beyond loopback: {wide}"
    # The switch is put back: a later --address run (same process) gets Ray's own address choice.
    from ray._private import ray_constants

    assert ray_constants.ENABLE_RAY_CLUSTER and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ


# ---- a cluster from `ray start` -----------------------------------------------------------------

def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited with {proc.returncode}: {(proc.stderr.read() or '')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    """End the `ray start --block` we started and everything in its process group (its Ray)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # gcs_server, raylet, workers: our own group only
    except ProcessLookupError:
        pass
    proc.wait()


DRIVER = textwrap.dedent("""
    import json, sys, time
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from nas.accuracy import DataConfig, ProxyConfig, TrainConfig
    from nas.accuracy.tune_trials import evaluate_specs
    from nas.core.spec import scale_width
    from nas.runtime.session import ray_session
    from helpers.data import TINY

    address, data, runs = sys.argv[1:4]
    with ray_session(address):
        # The second node joins once it has started, however long a loaded machine takes: wait for that
        # state (the deadline only bounds a node that never comes).
        deadline = time.time() + 240
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            if time.time() > deadline:
                sys.exit("the second node never joined")
            time.sleep(0.2)
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])

        @ray.remote(num_cpus=1)
        def where():
            return ray.get_runtime_context().get_node_id()

        ran_on = sorted(ray.get([where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False))
                                 .remote() for n in nodes]))
        config = ProxyConfig(data=DataConfig(path=data), train=TrainConfig(train_images=64, val_images=32,
                             epochs=1, batch_size=32, bn_images=32))
        results = evaluate_specs([TINY, scale_width(TINY, 1.5, name="wide")], config, address=address,
                                 run_dir=runs, name="cluster")
        print(json.dumps({"nodes": nodes, "ran_on": ran_on, "cpus": ray.cluster_resources().get("CPU"),
                          "results": [{"failed": r["failed"], "accuracy": r["accuracy"]} for r in results]}))
""")


def test_address_joins_a_cluster_started_with_ray_start(tmp_path):
    home = tmp_path / "home"  # Ray keeps its token in ~/.ray: never the user's
    home.mkdir()
    temp_dir = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # Ray's Unix socket paths must stay short
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    # A token in ~/.ray (as any earlier local Ray leaves) makes `ray start` turn token authentication on.
    subprocess.run([RAY_CLI, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    assert (home / ".ray" / "auth_token").exists()
    gcs, agent1, agent2 = _free_ports(3)  # the fixed defaults would meet a user's own cluster
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    head = subprocess.Popen([RAY_CLI, "start", "--head", f"--port={gcs}", f"--dashboard-agent-listen-port={agent1}",
                             "--include-dashboard=false", f"--temp-dir={temp_dir}", *common], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    worker = None
    try:
        _wait_for_port(gcs, head)
        # A node joining with `ray start --address` needs RAY_AUTH_MODE=token (Ray turns it on by
        # itself on the head only); the driver below gets no such help: ray_session must manage.
        worker = subprocess.Popen([RAY_CLI, "start", f"--address=127.0.0.1:{gcs}", f"--temp-dir={temp_dir}",
                                   f"--dashboard-agent-listen-port={agent2}", *common],
                                  env={**env, "RAY_AUTH_MODE": "token"}, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        data = write_idx_dataset(tmp_path / "data", n=200)
        driver = subprocess.run([sys.executable, "-c", DRIVER, f"127.0.0.1:{gcs}", str(data), str(tmp_path / "runs")],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert driver.returncode == 0, driver.stderr[-3000:]
        assert worker.poll() is None, worker.stderr.read()[-2000:]
        out = json.loads(driver.stdout.splitlines()[-1])
        assert len(out["nodes"]) == 2 and out["ran_on"] == out["nodes"] and out["cpus"] == 2
        assert [r["failed"] for r in out["results"]] == [False, False]
        assert all(0 <= r["accuracy"] <= 1 for r in out["results"])
    finally:
        if worker is not None:
            _stop(worker)
        _stop(head)
        subprocess.run(["rm", "-rf", temp_dir])
