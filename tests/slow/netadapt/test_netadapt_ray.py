"""NetAdapt's proposals as Ray trials give the in-process run's answer (slow: a private Ray starts)."""
from helpers.data import one_torch_thread  # noqa: F401 (autouse fixture)
from helpers.netadapt import FAST, data, iterations, tiny  # noqa: F401 (data, tiny: fixtures)
from nas.latency.devices import get_device
from nas.netadapt.netadapt_run import run_netadapt


def test_ray_trials_match_the_in_process_path(tiny, data, tmp_path):
    spec, _ = tiny
    target = 0.93 * get_device("pixel1").predict(spec).ms
    runs = {}
    for parallel in ("none", "ray"):
        runs[parallel] = run_netadapt(spec, target, "pixel1", data=data, out_dir=tmp_path / parallel,
                                      parallel=parallel, **FAST)
    assert runs["ray"]["arch_hash"] == runs["none"]["arch_hash"]
    a, b = iterations(tmp_path / "none"), iterations(tmp_path / "ray")
    assert [r["accuracy"] for r in a] == [r["accuracy"] for r in b]  # same seeds, one thread each: identical
