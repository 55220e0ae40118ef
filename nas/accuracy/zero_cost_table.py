"""The zero-cost scores by name: what each one is, without torch (`nas.accuracy.zero_cost` has the
scores themselves, one function per name), so that the proxies register their names and a command
lists them before torch loads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from nas.runtime.errors import UserError

if TYPE_CHECKING:
    import torch

    from nas.core.spec import ArchSpec

ScoreFn = Callable[["ArchSpec", "torch.Tensor", "torch.Tensor", int], float]


@dataclass(frozen=True)
class ZeroCostProxy:
    name: str
    needs_data: bool  # real images (else only the input shape)
    summary: str

    @property
    def fn(self) -> ScoreFn:
        """The score: the function of `nas.accuracy.zero_cost` that has the proxy's name."""
        from nas.accuracy import zero_cost  # deferred: torch costs ~2 s; the names and summaries need none

        return getattr(zero_cost, self.name)


ZERO_COST: dict[str, ZeroCostProxy] = {p.name: p for p in (
    ZeroCostProxy("naswot", True, "log-det of the binary activation-code kernel (Mellor et al. 2021)"),
    ZeroCostProxy("synflow", False, "log synaptic flow, BN-free, float64, |w| (Tanaka et al. 2020)"),
    ZeroCostProxy("grad_norm", True, "sum of layer gradient norms (Abdelfattah et al. 2021)"),
    ZeroCostProxy("zen", False, "Zen-score: log feature sensitivity + log BN scales (Lin et al. 2021)"),
    ZeroCostProxy("params", False, "number of parameters"),
    ZeroCostProxy("macs", False, "multiply-adds"),
)}


def get_zero_cost(name: str) -> ZeroCostProxy:
    try:
        return ZERO_COST[name]
    except KeyError:
        raise UserError(f"unknown zero-cost proxy {name!r} (one of {', '.join(ZERO_COST)})", setting="proxy") from None


def zero_cost_score(name: str, spec: ArchSpec, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Score an (already adapted) spec with the named proxy."""
    return get_zero_cost(name).fn(spec, images, labels, seed)
