"""The compare stage's trainings in a pool of worker processes give the numbers of those made in this one."""
from types import SimpleNamespace

from helpers.data import TINY
from nas.accuracy.proxy_config import DataConfig
from nas.budgets import get_budget
from nas.core.spec import scale_width
from nas.pipeline import compare


def test_trainings_in_worker_processes_equal_those_made_here(tmp_path, monkeypatch, fashion_mnist):
    """One thread per training, in a pool or here: the same numbers, whatever the CPU count."""
    budget = get_budget("smoke")
    nets = [{"name": "tiny", "kind": "final", "spec": TINY, "note": ""},
            {"name": "wide", "kind": "width_scaled", "spec": scale_width(TINY, 1.5, name="wide"), "note": ""}]
    data = DataConfig(path=str(fashion_mnist))
    results = {}
    for cpus in (1, 2):
        run_dir = tmp_path / f"cpus{cpus}"
        (run_dir / "compare").mkdir(parents=True)
        ctx = SimpleNamespace(run_dir=run_dir, budget=budget, prepared=SimpleNamespace(data=data))
        monkeypatch.setattr(compare, "available_cpus", lambda: cpus)  # the name compare imported
        results[cpus] = compare.train_networks(nets, [0, 1], ctx)
    accuracy = {cpus: {k: r["accuracy"] for k, r in res.items()} for cpus, res in results.items()}
    assert accuracy[1] == accuracy[2] and len(accuracy[1]) == 4
    assert len(set(accuracy[1].values())) > 1
