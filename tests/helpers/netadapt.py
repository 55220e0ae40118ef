"""What the NetAdapt suites share: a five-block spec whose loop runs in seconds, its fast settings, the
data set, and the iterations of a run's log."""
from pathlib import Path

import pytest

from nas.accuracy.proxy_config import DataConfig, TrainConfig
from nas.core.spec_file import load_spec
from nas.runtime.jsonl import read_log

TINY_YAML = """\
name: tiny
resolution: 224
num_classes: 1000
stem: {out: 16, k: 3, s: 2, act: hswish}
blocks:
  - {k: 3, exp: 16, out: 16, se: true, act: relu, s: 2}
  - {k: 3, exp: 48, out: 24, se: false, act: relu, s: 2}
  - {k: 3, exp: 72, out: 24, se: false, act: relu, s: 1}
  - {k: 5, exp: 96, out: 40, se: true, act: hswish, s: 2}
  - {k: 5, exp: 120, out: 40, se: true, act: hswish, s: 1}
head: {conv: 96, act: hswish, fc: 128, dropout: 0.2}
"""
# A few hundred 32x32 images and a handful of steps: enough to rank proposals, fast enough for CI.
TRAIN = TrainConfig(train_images=256, val_images=128, steps=30, batch_size=32, bn_images=64)
FAST = dict(train=TRAIN, steps=3, final_steps=0, delta=0.05, threads=1, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """TINY_YAML as a spec and as its file."""
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(TINY_YAML)
    return load_spec(path), path


@pytest.fixture(scope="module")
def data(fashion_mnist):
    """Fashion-MNIST, or the synthetic IDX set where it is not installed: these tests never skip."""
    return DataConfig(path=str(fashion_mnist))


def iterations(out: Path) -> list[dict]:
    """The iteration records of OUT/netadapt.jsonl (none torn)."""
    records, torn = read_log(out / "netadapt.jsonl")
    assert not torn
    return [r for r in records if r["type"] == "iteration"]
