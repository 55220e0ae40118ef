"""Proxy data: the IDX, CIFAR and ImageFolder readers, the held-out split, and batches as model inputs."""
import gzip
import pickle

import numpy as np
import pytest
import torch

from helpers.data import one_torch_thread, write_idx_dataset  # noqa: F401 (autouse fixture)
from nas.runtime.errors import UserError
from nas.accuracy import datasets
from nas.accuracy.proxy_config import DataConfig
from nas.accuracy.proxy_data import _load_cached, load_data, split_indices
from nas.accuracy.datasets import (FASHION_MNIST_DIR, detect_dataset, open_source, read_cifar_dir, read_idx_dir,
                                  read_image_folder, to_resolution)


# ---- synthetic data sets (also used by the other proxy tests) -------------------------------

@pytest.fixture
def idx_dir(tmp_path):
    return write_idx_dataset(tmp_path / "fmnist")


def write_cifar_dir(directory, batches: int = 2, per_batch: int = 12, classes_key: str = "labels"):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for b in range(1, batches + 1):
        batch = {b"batch_label": b"training batch",
                 b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 classes_key.encode(): [int(v) for v in rng.integers(0, 10, size=per_batch)]}
        with open(directory / f"data_batch_{b}", "wb") as f:
            pickle.dump(batch, f)
    return directory


def write_image_folder(root, sizes=((40, 30), (20, 50), (33, 33))):
    from PIL import Image

    for c, colour in (("cat", (200, 10, 10)), ("dog", (10, 200, 10))):
        (root / c).mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("RGB", size, colour).save(root / c / f"{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


# ---- Fashion-MNIST --------------------------------------------------------------------------

@pytest.fixture
def default_fashion_mnist(monkeypatch, fashion_mnist):
    """The data set where the default location (no --data) is looked for: the real one, else its stand-in."""
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", fashion_mnist)
    caches = (datasets._open_cached, _load_cached)
    for cache in caches:  # what an earlier test opened from the default location
        cache.cache_clear()
    yield fashion_mnist
    for cache in caches:  # a stand-in never stays cached as the default for later tests
        cache.cache_clear()


def test_fashion_mnist_from_its_default_location(default_fashion_mnist):
    source = open_source("fashion-mnist")
    assert source.location == str(default_fashion_mnist) and source.num_classes == 10
    if default_fashion_mnist == FASHION_MNIST_DIR:  # the Debian package's training split
        assert len(source) == 60_000
    assert source.labels.dtype == np.int64 and source.labels.min() == 0 and source.labels.max() == 9
    data = load_data(DataConfig(), 200, 100)
    assert data.train_x.shape == (200, 1, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.val_x.shape == (100, 1, 32, 32)
    assert int(data.train_x[:, :, :2].max()) == 0  # 28 -> 32 by zero padding
    assert data.train_y.dtype == torch.int64 and 0 <= int(data.train_y.min()) and int(data.train_y.max()) <= 9


def test_idx_reader_shapes_and_resolutions(idx_dir):
    source = read_idx_dir(idx_dir)
    assert len(source) == 600 and source.num_classes == 10
    padded = source.load(np.arange(5), 32)
    assert padded.shape == (5, 1, 32, 32) and padded.dtype == np.uint8
    assert (padded[:, :, 2:30, 2:30] == source.load(np.arange(5), 28)).all()
    assert source.load(np.arange(5), 48).shape == (5, 1, 48, 48)  # resized
    assert detect_dataset(idx_dir) == "fashion-mnist"


def test_missing_fashion_mnist_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist") as err:
        read_idx_dir(tmp_path / "absent")
    assert "--data" in str(err.value)
    with pytest.raises(UserError, match="--data"):
        read_idx_dir(tmp_path / "elsewhere")


def test_corrupt_idx_is_a_user_error(idx_dir):
    (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20))
    with pytest.raises(UserError, match="train-images"):
        read_idx_dir(idx_dir)


# ---- split and batches ----------------------------------------------------------------------

def test_split_is_deterministic_disjoint_and_complete():
    train, val = split_indices(600, seed=0)
    train2, val2 = split_indices(600, seed=0)
    assert (train == train2).all() and (val == val2).all()
    assert len(val) == 100 and not set(train) & set(val) and set(train) | set(val) == set(range(600))
    assert not (split_indices(600, seed=1)[1] == val).all()
    assert len(split_indices(600_000)[1]) == 10_000
    with pytest.raises(UserError):
        split_indices(5)


def test_load_data_subsets_are_prefixes_and_inputs_are_normalised(idx_dir):
    config = DataConfig(path=str(idx_dir))
    small, large = load_data(config, 50, 20), load_data(config, 200, 40)
    assert torch.equal(small.train_x, large.train_x[:50]) and torch.equal(small.val_y, large.val_y[:20])
    x, y = small.train_batch(torch.arange(8))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x[:, 0], x[:, 1])  # grey repeated to 3 channels
    flipped, _ = small.train_batch(torch.arange(8), flip=torch.ones(8, dtype=torch.bool))
    assert torch.equal(flipped, x.flip(3))
    assert y.dtype == torch.int64


# ---- CIFAR and ImageFolder ------------------------------------------------------------------

def test_cifar_python_format(tmp_path):
    write_cifar_dir(tmp_path / "cifar-10-batches-py")
    assert detect_dataset(tmp_path) == "cifar10"
    source = read_cifar_dir(tmp_path)
    assert len(source) == 24 and source.num_classes == 10
    images = source.load(np.arange(3), 32)
    assert images.shape == (3, 3, 32, 32) and images.dtype == np.uint8
    assert source.load(np.arange(3), 16).shape == (3, 3, 16, 16)


def test_cifar_pickle_may_not_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(UserError, match="not allowed"):
        read_cifar_dir(directory)


def test_cifar_without_labels_or_with_labels_out_of_range(tmp_path):
    write_cifar_dir(tmp_path / "c", classes_key="fine")
    with pytest.raises(UserError, match="lacks"):
        read_cifar_dir(tmp_path / "c")
    directory = write_cifar_dir(tmp_path / "d", batches=1)
    batch = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [3, 12]}
    (directory / "data_batch_1").write_bytes(pickle.dumps(batch))
    with pytest.raises(UserError, match="labels outside 0..9"):
        read_cifar_dir(directory)


def test_image_folder(tmp_path):
    pytest.importorskip("PIL")
    root = write_image_folder(tmp_path / "tree")
    assert detect_dataset(root) == "imagefolder"
    source = read_image_folder(root)
    assert len(source) == 6 and source.num_classes == 2
    assert list(source.labels) == [0, 0, 0, 1, 1, 1]  # classes in name order
    images = source.load(np.array([0, 4]), 16)
    assert images.shape == (2, 3, 16, 16)
    assert images[0, 0].min() == 200 and images[1, 1].min() == 200  # red cat, green dog, whole crop
    data = load_data(DataConfig(dataset="imagefolder", path=str(root), resolution=16, val_size=2), 4, 2)
    assert data.train_x.shape == (4, 3, 16, 16) and data.num_classes == 2


def test_image_folder_needs_two_classes(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "only").mkdir()
    with pytest.raises(UserError, match="class"):
        read_image_folder(tmp_path)


def test_to_resolution_pads_small_and_resizes_large_changes():
    images = np.full((2, 1, 28, 28), 100, dtype=np.uint8)
    assert to_resolution(images, 32)[0, 0, 0, 0] == 0
    resized = to_resolution(images, 64)
    assert resized.shape == (2, 1, 64, 64) and (resized == 100).all()
