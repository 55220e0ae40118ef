"""What the supernet suites share: the tiny space, a data set learnable in a few steps, a quick recipe."""
import numpy as np
import torch

from helpers import DATA
from nas.accuracy.proxy_data import ProxyData
from nas.supernet.supernet_config import SupernetConfig

TINY = DATA / "tiny_space.yaml"


def patch_data(n_train=256, n_val=128, resolution=16, seed=0) -> ProxyData:
    """Ten classes, each a bright patch at its own place: learnable in a few steps."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 10
        x = rng.integers(0, 60, size=(n, 1, resolution, resolution))
        for i, label in enumerate(y):
            r, c = divmod(int(label), 4)
            x[i, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 180
        return torch.from_numpy(np.clip(x, 0, 255).astype(np.uint8)), torch.from_numpy(y.astype(np.int64))

    (tx, ty), (vx, vy) = make(n_train), make(n_val)
    return ProxyData(name="patches", num_classes=10, resolution=resolution, train_x=tx, train_y=ty, val_x=vx,
                     val_y=vy, mean=torch.full((1, 1, 1, 1), 0.2), std=torch.full((1, 1, 1, 1), 0.3))


CONFIG = SupernetConfig(epochs=2, batch_size=32, learning_rate=0.2, paths=3, bn_images=64, eval_batch_size=64)
