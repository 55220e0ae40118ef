"""Readers for the image data sets a proxy trains on: IDX (Fashion-MNIST), CIFAR python, ImageFolder.

Each reader gives an `ImageSource`: every label up front (cheap) and `load(indices, resolution)`
for the pixels, so that a split can be drawn before anything large is decoded (an ImageNet tree
decodes only the images a proxy uses). Pixels are uint8 in (N, C, H, W) with C = 1 or 3; nothing
here touches the network, and a missing or malformed data set is a one-line `UserError`.
"""
from __future__ import annotations

import functools
import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nas.runtime.errors import UserError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

# Per-channel statistics of the training sets, for input normalisation.
STATS = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's
}


@dataclass(frozen=True, eq=False)
class ImageSource:
    """A labelled training set: labels in memory, pixels on request."""

    name: str
    location: str
    labels: np.ndarray  # int64, (N,)
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    loader: Callable[[np.ndarray, int], np.ndarray]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def load(self, indices: np.ndarray, resolution: int) -> np.ndarray:
        """uint8 pixels (len(indices), C, resolution, resolution)."""
        return self.loader(np.asarray(indices, dtype=np.int64), resolution)


def open_source(dataset: str, path: str | os.PathLike | None = None) -> ImageSource:
    """The training split of a data set (cached per process: trials reuse it)."""
    resolved = None if path is None else str(Path(path).expanduser().resolve())
    return _open_cached(dataset, resolved)


@functools.lru_cache(maxsize=4)
def _open_cached(dataset: str, path: str | None) -> ImageSource:
    if dataset == "fashion-mnist":
        return read_idx_dir(Path(path) if path else FASHION_MNIST_DIR, name=dataset)
    if path is None:
        raise UserError(f"the {dataset} data set has no default location: give it with --data PATH", setting="data")
    if dataset in ("cifar10", "cifar100"):
        return read_cifar_dir(Path(path), name=dataset)
    if dataset == "imagefolder":
        return read_image_folder(Path(path))
    raise UserError(f"unknown data set {dataset!r}", setting="dataset")


def detect_dataset(path: str | os.PathLike) -> str:
    """Which reader a directory needs: IDX files, CIFAR pickles or class folders."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise UserError("no such directory (give a data set directory with --data PATH)", source=str(p),
                        setting="data")
    names = {c.name for c in p.iterdir()}
    if any(n.startswith("train-images-idx3-ubyte") for n in names):
        return "fashion-mnist"
    for sub in (p, p / "cifar-10-batches-py", p / "cifar-100-python"):
        if (sub / "data_batch_1").is_file():
            return "cifar10"
        if (sub / "train").is_file():
            return "cifar100"
    if any((p / n).is_dir() for n in names):
        return "imagefolder"
    raise UserError("cannot tell the data set's format (IDX, CIFAR python or class folders); "
                    "name it with --dataset", source=str(p), setting="data")


# ---- resizing -------------------------------------------------------------------------------

def to_resolution(images: np.ndarray, resolution: int) -> np.ndarray:
    """Fit (N, C, H, W) uint8 images to resolution x resolution.

    Up to 4 pixels short (Fashion-MNIST's 28 -> 32, the LeNet convention) are zero-padded so the
    pixels stay exact; any other change is an antialiased bilinear resize.
    """
    n, c, h, w = images.shape
    if h == w == resolution:
        return images
    if h == w and 0 < resolution - h <= 4:
        before = (resolution - h) // 2
        pad = ((0, 0), (0, 0), (before, resolution - h - before), (before, resolution - w - before))
        return np.pad(images, pad)
    out = np.empty((n, c, resolution, resolution), dtype=np.uint8)
    for start in range(0, n, 1024):  # in chunks: float copies of a whole set would not fit
        chunk = torch.from_numpy(images[start:start + 1024]).float()
        resized = F.interpolate(chunk, size=(resolution, resolution), mode="bilinear", antialias=True,
                                align_corners=False)
        out[start:start + 1024] = resized.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def _array_loader(images: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray]:
    return lambda indices, resolution: to_resolution(images[indices], resolution)


# ---- IDX (MNIST, Fashion-MNIST) -------------------------------------------------------------

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or raw) of unsigned bytes as a numpy array."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise UserError(f"cannot read IDX file: {err}", source=str(path)) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError("not an IDX file of unsigned bytes (bad magic number)", source=str(path))
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise UserError(f"IDX size does not match its header shape {shape}", source=str(path))
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def read_idx_dir(directory: Path, name: str = "fashion-mnist") -> ImageSource:
    """Fashion-MNIST (or MNIST) training split from its four-file IDX directory."""
    paths = [_find(directory, stem) for stem in _IDX_FILES]
    if None in paths:
        if directory == FASHION_MNIST_DIR:
            raise UserError("Fashion-MNIST is not installed: run `apt-get install dataset-fashion-mnist`, "
                            "or give another data set with --data PATH", source=str(directory), setting="data")
        if not directory.is_dir():
            raise UserError("no such directory (give a data set directory with --data PATH)",
                            source=str(directory), setting="data")
        raise UserError(f"no {_IDX_FILES[paths.index(None)]}[.gz] here (give the IDX directory with --data PATH)",
                        source=str(directory), setting="data")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise UserError(f"IDX shapes {images.shape} and {labels.shape} do not form an image set",
                        source=str(directory))
    labels = _checked_labels(labels, 10, str(paths[1]))
    mean, std = STATS["fashion-mnist"]
    return ImageSource(name, str(directory), labels, 10, mean, std, _array_loader(images[:, None]))


# ---- CIFAR python format --------------------------------------------------------------------

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only: a data file must not run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a data file")
        if module.startswith("numpy") and module.endswith("multiarray"):
            module = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise UserError(f"cannot read CIFAR batch: {err}", source=str(path)) from None
    if not isinstance(data, dict):
        raise UserError("not a CIFAR batch (expected a pickled dict)", source=str(path))
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def read_cifar_dir(directory: Path, name: str = "cifar10") -> ImageSource:
    """CIFAR-10 (data_batch_1..5) or CIFAR-100 (train) training split, python format."""
    if not directory.is_dir():
        raise UserError("no such directory (give the CIFAR directory with --data PATH)", source=str(directory),
                        setting="data")
    sub, files, key, classes = {
        "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "labels", 10),
        "cifar100": ("cifar-100-python", ["train"], "fine_labels", 100),
    }[name]
    if not (directory / files[0]).is_file() and (directory / sub / files[0]).is_file():
        directory = directory / sub
    present = [directory / f for f in files if (directory / f).is_file()]
    if not present:
        raise UserError(f"no {files[0]} here: expected the {name} python format "
                        "(give its directory with --data PATH)", source=str(directory), setting="data")
    images, labels = [], []
    for path in present:
        batch = _unpickle(path)
        if "data" not in batch or key not in batch:
            raise UserError(f"CIFAR batch lacks 'data' or '{key}'", source=str(path))
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(batch[key]):
            raise UserError(f"CIFAR data has shape {data.shape}, expected (N, 3072)", source=str(path))
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(_checked_labels(np.asarray(batch[key]), classes, str(path)))
    mean, std = STATS[name]
    return ImageSource(name, str(directory), np.concatenate(labels), classes, mean, std,
                       _array_loader(np.concatenate(images)))


# ---- ImageFolder ----------------------------------------------------------------------------

def read_image_folder(root: Path) -> ImageSource:
    """root/<class>/**/<image> (or root/train/<class>/..., ImageNet's layout); classes sorted by name."""
    if not root.is_dir():
        raise UserError("no such directory (give the image tree with --data PATH)", source=str(root),
                        setting="data")
    if (root / "train").is_dir():
        root = root / "train"
    files: list[str] = []
    labels: list[int] = []
    classes = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        found = sorted(os.path.join(dirpath, f) for dirpath, _, names in os.walk(class_dir)
                       for f in names if f.lower().endswith(IMAGE_EXTENSIONS))
        if found:
            labels.extend([len(classes)] * len(found))
            classes.append(class_dir.name)
            files.extend(found)
    if len(classes) < 2:
        raise UserError(f"expected class folders holding images ({', '.join(IMAGE_EXTENSIONS)}); "
                        f"found {len(classes)} class(es)", source=str(root), setting="data")
    mean, std = STATS["imagefolder"]
    return ImageSource("imagefolder", str(root), np.asarray(labels, dtype=np.int64), len(classes), mean, std,
                       functools.partial(_decode_files, tuple(files)))


def _decode_files(files: Sequence[str], indices: np.ndarray, resolution: int) -> np.ndarray:
    try:
        from PIL import Image  # deferred: Pillow, for image folders only
    except ImportError:
        raise UserError("reading an image folder needs Pillow (pip install pillow)", setting="data") from None
    out = np.empty((len(indices), 3, resolution, resolution), dtype=np.uint8)
    for row, i in enumerate(indices):
        path = files[int(i)]
        try:
            with Image.open(path) as img:
                img.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale, much faster
                out[row] = _resize_center_crop(img.convert("RGB"), resolution, Image).transpose(2, 0, 1)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot decode image: {err}", source=path) from None
    return out


def _resize_center_crop(img, resolution: int, Image) -> np.ndarray:
    """Shorter side to `resolution`, then the central square (the usual evaluation transform)."""
    w, h = img.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    img = img.resize(size, Image.BILINEAR, reducing_gap=None)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return np.asarray(img.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def _checked_labels(labels: np.ndarray, num_classes: int, source: str) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(f"labels outside 0..{num_classes - 1} (min {labels.min()}, max {labels.max()})",
                        source=source)
    return labels
