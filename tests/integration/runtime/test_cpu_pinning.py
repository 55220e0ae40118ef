"""--cpus N in a real process: it takes the CPU another process leaves idle (runs alone: marker `serial`)."""
import os
import subprocess
import sys
import time

import pytest

from helpers import ROOT
from nas.runtime.session import cpu_load, cpu_ticks


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
