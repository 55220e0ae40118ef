"""The supernet as an accuracy proxy: a network's score is its path's top-1 with inherited weights.

The proxy holds the checkpoint's path, not the weights: it loads them once per process on first
use, so it pickles small for Ray workers. Each score re-estimates BN for the path on
`bn_images` training images, then measures top-1 on `val_images` held-out ones.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from nas.accuracy.proxy_interface import Proxy
from nas.core.spec import ArchSpec
from nas.runtime.errors import UserError
from nas.runtime.registry import PROXIES
from nas.runtime.session import select_device, set_threads
from nas.supernet.supernet_config import SupernetConfig
from nas.supernet.supernet_run import load_supernet
from nas.train.training_state import file_digest


class SupernetProxy(Proxy):
    name = "supernet"
    cheap = False  # an accuracy, not a score to be mapped onto one

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto", threads: int | None = None):
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.device, self.threads = device, threads
        self._loaded = None

    def use(self, checkpoint: str | Path) -> "SupernetProxy":
        """Point the proxy at a trained supernet (the pipeline's supernet stage does, once trained)."""
        self.checkpoint, self._loaded = str(checkpoint), None
        return self

    def __getstate__(self):
        return {**self.__dict__, "_loaded": None}

    def fingerprint(self) -> str:
        if self.checkpoint is None:
            return "supernet-untrained"

        return hashlib.sha256(f"supernet:{file_digest(self.checkpoint)}".encode()).hexdigest()[:12]

    def load(self):
        """The supernet (loaded once per process), its scoring images and its recorded config."""
        if self.checkpoint is None:
            raise UserError("the supernet proxy has no trained supernet: train one with `python -m nas.supernet "
                            "train` and give it with --supernet", setting="supernet")
        if self._loaded is None:
            from nas.accuracy.proxy_data import load_data  # deferred: loads torch

            net, state, data_config = load_supernet(self.checkpoint)
            device = select_device(self.device)
            c = state["config"]
            data = load_data(data_config, c["bn_images"], c["val_images"], device)
            self._loaded = (net.to(device), data, c)
        return self._loaded

    def evaluate(self, spec: ArchSpec) -> dict[str, Any]:
        from nas.supernet.path_training import evaluate_path  # deferred: loads torch

        set_threads(self.threads)
        start = time.perf_counter()
        net, data, c = self.load()
        path = net.adapt(spec)
        net.layout(path)  # a spec the supernet cannot run is the caller's error, not a failed network
        accuracy = evaluate_path(net, path, data, SupernetConfig(**c))
        return {"proxy": self.name, "score": accuracy, "accuracy": accuracy, "seconds": time.perf_counter() - start,
                "failed": False, "reason": None, "arch_hash": spec.content_hash(),
                "val_images": int(data.val_x.shape[0])}


@PROXIES.register("supernet", help="top-1 with weights inherited from one trained weight-sharing supernet",
                  kind="supernet")
def _supernet(name: str, context) -> SupernetProxy:
    return SupernetProxy(device=context.device, threads=context.threads)  # its weights come later
