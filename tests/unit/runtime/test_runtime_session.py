"""--cpus N pins a run to the N least busy CPUs it may use, so two runs side by side do not share one
(in a real process beside a busy one: tests/integration/runtime/test_cpu_pinning.py)."""
from nas.runtime.session import cpu_ticks, least_busy

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
