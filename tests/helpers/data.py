"""Synthetic data the suites share: a learnable IDX data set, a tiny spec, one torch thread."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.accuracy.datasets import FASHION_MNIST_DIR
from nas.core.spec import spec_from_dict

# Set to 1 to run every data-needing test on the synthetic set even where Fashion-MNIST is installed
# (how CI proves that no test depends on, or skips for, the real one).
SYNTHETIC_ENV = "NAS_TEST_SYNTHETIC_DATA"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny networks gain nothing from threads, and spinning threads suffer on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(directory, n: int = 600, seed: int = 0):
    """A learnable Fashion-MNIST look-alike: each class lights a different 7x7 patch of a noisy 28x28 image."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 60, size=(n, 28, 28))
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 4)
        images[i, 7 * r:7 * r + 7, 7 * c:7 * c + 7] += 180
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.clip(images, 0, 255))))
    (directory / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    return directory


def fashion_mnist_dir(tmp_root: Path) -> Path:
    """Fashion-MNIST where Debian installed it; otherwise a synthetic IDX set of the same layout."""
    if FASHION_MNIST_DIR.is_dir() and os.environ.get(SYNTHETIC_ENV, "") != "1":
        return FASHION_MNIST_DIR
    folder = tmp_root / "fashion-mnist"
    if not folder.is_dir():
        write_idx_dataset(folder, n=6000)
    return folder


@pytest.fixture(scope="session")
def fashion_mnist(tmp_path_factory) -> Path:
    """The data set tests give with --data: never a skip when the real one is absent."""
    return fashion_mnist_dir(tmp_path_factory.mktemp("data"))


TINY = spec_from_dict({
    "name": "tiny", "resolution": 224, "num_classes": 1000,
    "stem": {"out": 8, "k": 3, "s": 2, "act": "hswish"},
    "blocks": [{"k": 3, "exp": 16, "out": 16, "se": True, "act": "relu", "s": 2},
               {"k": 5, "exp": 32, "out": 16, "se": False, "act": "hswish", "s": 1}],
    "head": {"conv": 32, "act": "hswish", "dropout": 0.0},
})
