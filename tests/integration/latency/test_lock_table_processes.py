"""Two processes filling one latency table at once: the locked read-merge-write keeps every measurement."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import ROOT
from nas.export.timing import Timing
from nas.latency.table import LatencyTable

FILLER = textwrap.dedent("""
    import sys, time
    from nas.export.timing import Timing
    from nas.latency.table import LatencyTable
    path, tag = sys.argv[1], sys.argv[2]
    table = LatencyTable.load(path)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for k in range(25):
        table.add(f"{tag}-{k}", Timing(1.0, 0.9, 1.1, 36))
        table.save(merge=True)
        time.sleep(0.002)
""")


def test_two_processes_filling_one_table_at_once_lose_nothing(tmp_path):
    path = tmp_path / "host.yaml"
    LatencyTable({"name": "host", "cpu": "test"}, {"a": Timing(1.0, 0.9, 1.1, 36)}, path=path).save()
    procs = [subprocess.Popen([sys.executable, "-c", FILLER, str(path), tag], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for tag in ("p", "q")]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(60) == 0
    ops = LatencyTable.load(path).ops
    assert set(ops) == {"a"} | {f"{t}-{k}" for t in "pq" for k in range(25)}
