"""Supernet training on two torch.distributed worker processes (what Ray Train sets up)."""
from dataclasses import replace

import torch

from helpers.supernet import CONFIG, TINY, patch_data
from nas.core.space import load_space
from nas.supernet.path_training import SupernetTraining


def _data_parallel_worker(rank, world, port, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    training = SupernetTraining(load_space(TINY), patch_data(), replace(CONFIG, epochs=1), seed=2, rank=rank,
                                world=world)
    training.run()
    torch.save({k: v for k, v in training.net.state_dict().items() if v.is_floating_point()}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_data_parallel_workers_keep_equal_weights_and_learn(tmp_path):
    """Two torch.distributed workers (what Ray Train sets up), each on half of every batch: their
    gradients averaged before each step, the weights stay identical; they differ from the start."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_data_parallel_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in (0, 1))
    start = SupernetTraining(load_space(TINY), patch_data(), CONFIG, seed=2).net.state_dict()
    # BN running statistics are each worker's own (its share of the batch); every weight is shared.
    weights = [k for k in a if "running" not in k]
    assert all(torch.equal(a[k], b[k]) for k in weights)
    assert any(not torch.equal(a[k], start[k]) for k in weights)
    assert any(not torch.equal(a[k], b[k]) for k in a if "running_mean" in k)
