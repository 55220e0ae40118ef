"""--cpus N pins a run to the N least busy CPUs it may use, so two runs side by side do not share one."""
import os
import subprocess
import sys
import time

import pytest

from helpers import ROOT
from nas.runtime.session import cpu_load, cpu_ticks, least_busy

STAT = """cpu  500 0 300 9000 100 0 10 0 0 0
cpu0 400 0 200 4000 50 0 10 0 0 0
cpu1 100 0 100 5000 50 0 0 0 0 0
intr 12345
"""


def test_cpu_ticks_reads_busy_and_total_ticks_per_cpu():
    assert cpu_ticks(STAT) == {0: (610, 4660), 1: (200, 5250)}
    assert cpu_ticks("intr 1\n") == {}


def test_least_busy_takes_the_idlest_cpus_and_the_lowest_numbers_among_equals():
    before = {0: (0, 100), 1: (0, 100), 2: (0, 100), 3: (0, 100)}
    after = {0: (90, 200), 1: (10, 200), 2: (95, 200), 3: (10, 200)}
    assert least_busy([0, 1, 2, 3], before, after, 1) == [1]
    assert least_busy([0, 1, 2, 3], before, after, 2) == [1, 3]
    assert least_busy([0, 2], before, after, 1) == [0]
    assert least_busy([0, 1], {}, {}, 1) == [0]  # nothing known: the first


@pytest.mark.serial
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_a_run_limited_to_one_cpu_avoids_the_cpu_another_one_keeps_busy():
    first, second = sorted(os.sched_getaffinity(0))[:2]
    before = cpu_ticks()
    time.sleep(0.3)
    if cpu_load(before, cpu_ticks(), second) > 0.5:
        pytest.skip("the machine is busy already: no CPU is idler than another")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {first}))
    try:
        time.sleep(0.5)
        probe = ("import os; from nas.runtime.session import limit_cpus; limit_cpus(1); "
                 "print(sorted(os.sched_getaffinity(0)))")
        out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             preexec_fn=lambda: os.sched_setaffinity(0, {first, second}))
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"[{second}]"
    finally:
        busy.kill()
        busy.wait()
