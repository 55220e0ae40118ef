"""What every accuracy proxy is: the one interface, in a module of its own so that proxies defined
elsewhere (the supernet's, the ImageNet models', cascades) import it without importing the factory
(`nas.accuracy.proxy.make_proxy`) that imports them."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

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
