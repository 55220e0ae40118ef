"""What every accuracy proxy is: the one interface, in a module of its own so that proxies defined
elsewhere (the supernet's, the ImageNet models', cascades) import it without importing the factory
(`nas.accuracy.proxy.make_proxy`) that imports them."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from nas.accuracy.proxy_config import DataConfig, TrainConfig
from nas.core.spec import ArchSpec


class Proxy(ABC):
    """An accuracy estimate for architectures; `cheap` proxies do not train."""

    name: str
    cheap: bool
    predicts_accuracy: bool = False  # its score is a top-1 itself (the ImageNet proxies): no score map

    @abstractmethod
    def evaluate(self, spec: ArchSpec) -> dict[str, Any]:
        ...

    @abstractmethod
    def fingerprint(self) -> str:
        """Identity of everything that changes this proxy's results (keys result caches)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


@dataclass(frozen=True)
class ProxyContext:
    """What a registered proxy factory, `factory(name, context) -> Proxy`, is made for."""

    budget: Any  # the budget's accuracy part (nas.budgets.AccuracyBudget): recipes, zero-cost batch
    data: DataConfig
    seed: int = 0
    device: str = "auto"  # torch device
    threads: int | None = None
    train: TrainConfig | None = None  # replaces the budget's recipe for a training proxy
