"""Reward functions of the search: accuracy and latency in, one number out.

Pure functions of numbers. Each accepts floats or numpy arrays (broadcast together) and returns a
float for scalar input, an array otherwise, so a searcher can score one trial or a whole batch.

- `mnasnet_reward`: ACC x (LAT/T)^w, w = alpha when LAT <= T else beta (MnasNet, Tan et al. 2019).
- `tunas_reward`: Q + beta x |LAT/T - 1| (TuNAS, Bender et al. 2020).
- `expected_mnasnet_reward`, `expected_tunas_reward`, `prob_over_target`: the same rewards in
  expectation over the latency model's spread (p10, median, p90); see `latency_moment`.
- `RewardConfig`: the choice of reward and its constants, validated, callable per trial.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

import numpy as np
from numpy.typing import ArrayLike

from nas.runtime.errors import UserError
from nas.runtime.registry import REWARDS

SOFT_W = -0.07          # MnasNet: 2x latency is worth ~5% relative accuracy (2**-0.07 = 0.953)
SMALL_W = -0.15         # MobileNetV3-Small's search: accuracy moves faster with latency
TUNAS_BETA = -0.10      # TuNAS's default absolute-reward cost
Z90 = 1.2815515655446004  # standard-normal 90% quantile: p10/p90 are median -/+ 1.2816 sigma

Kind = Literal["mnasnet", "tunas"]
KINDS = ("mnasnet", "tunas")

Reward = float | np.ndarray


def _out(x: np.ndarray) -> Reward:
    return float(x) if np.ndim(x) == 0 else x


def _finite(name: str, value: ArrayLike, *, positive: bool = False, nonneg: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise UserError(f"must be a number, got {value!r}", source="reward", field=name) from None
    if not np.all(np.isfinite(arr)):
        raise UserError(f"must be finite, got {value!r}", source="reward", field=name)
    if positive and np.any(arr <= 0):
        raise UserError(f"must be > 0, got {value!r}", source="reward", field=name)
    if nonneg and np.any(arr < 0):
        raise UserError(f"must be >= 0, got {value!r}", source="reward", field=name)
    return arr


def _exponent(name: str, value: float) -> float:
    value = float(_finite(name, value))
    if value > 0:
        # A positive exponent would reward being slower.
        raise UserError(f"must be <= 0, got {value}", source="reward", field=name)
    return value


def mnasnet_reward(accuracy: ArrayLike, latency_ms: ArrayLike, target_ms: ArrayLike,
                   alpha: float = SOFT_W, beta: float = SOFT_W) -> Reward:
    """MnasNet's ACC(m) x [LAT(m)/T]^w, with w = alpha if LAT <= T else beta.

    Soft constraint alpha = beta = -0.07; hard constraint alpha = 0, beta = -1 (ACC under the
    target, ACC x T/LAT over it). Accuracy must be >= 0: with a negative score the factor would
    favour slower models, so signed proxy scores belong with `tunas_reward`.
    """
    acc = _finite("accuracy", accuracy, nonneg=True)
    lat = _finite("latency_ms", latency_ms, positive=True)
    target = _finite("target_ms", target_ms, positive=True)
    alpha, beta = _exponent("alpha", alpha), _exponent("beta", beta)
    ratio = lat / target
    return _out(acc * ratio ** np.where(ratio <= 1.0, alpha, beta))


def tunas_reward(quality: ArrayLike, latency_ms: ArrayLike, target_ms: ArrayLike,
                 beta: float = TUNAS_BETA) -> Reward:
    """TuNAS's absolute reward Q(m) + beta x |LAT(m)/T - 1|, beta <= 0.

    It penalises missing the target on either side, so the search stays near T instead of
    drifting to fast models; additive, so any signed quality score works.
    """
    q = _finite("accuracy", quality)
    lat = _finite("latency_ms", latency_ms, positive=True)
    target = _finite("target_ms", target_ms, positive=True)
    beta = _exponent("beta", beta)
    return _out(q + beta * np.abs(lat / target - 1.0))


# ---- latency spread --------------------------------------------------------------------------

def _spread(median: ArrayLike, p10: ArrayLike, p90: ArrayLike, target_ms: ArrayLike):
    """Log-space parameters of the two-piece lognormal fitted to (p10, median, p90)."""
    med = _finite("latency_ms", median, positive=True)
    lo = _finite("p10", p10, positive=True)
    hi = _finite("p90", p90, positive=True)
    target = _finite("target_ms", target_ms, positive=True)
    if np.any(lo > med) or np.any(hi < med):
        raise UserError(f"need p10 <= median <= p90, got p10={p10!r}, median={median!r}, p90={p90!r}",
                        source="reward", field="p10/p90")
    mu = np.log(med / target)
    return mu, np.log(med / lo) / Z90, np.log(hi / med) / Z90


def _piece(w: float, mu: np.ndarray, sigma: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """E[exp(w X); a < X <= b] for X ~ N(mu, sigma^2), a <= b; sigma = 0 is a point mass at mu."""
    from scipy.special import ndtr  # deferred: scipy.special costs ~0.5 s; the rewards' names need none

    s = np.maximum(sigma, 1e-12)
    shift = mu + w * s * s
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = ndtr((b - shift) / s) - ndtr((a - shift) / s)
    return np.exp(w * mu + 0.5 * (w * s) ** 2) * mass


def latency_moment(w: float, mu: np.ndarray, s_lo: np.ndarray, s_hi: np.ndarray,
                   above: bool) -> np.ndarray:
    """E[(LAT/T)^w ; LAT > T] (above) or E[(LAT/T)^w ; LAT <= T] under the fitted latency law.

    The law: ln(LAT/T) is a two-piece normal with median mu, scale s_lo below the median and s_hi
    above it, each half holding probability 1/2, so p10, median and p90 are matched exactly.
    """
    inf = np.full_like(mu, np.inf)
    cut_lo, cut_hi = np.minimum(mu, 0.0), np.maximum(mu, 0.0)   # ln(T/T) = 0 is the target
    if above:
        return _piece(w, mu, s_lo, cut_lo, mu) + _piece(w, mu, s_hi, cut_hi, inf)
    return _piece(w, mu, s_lo, -inf, cut_lo) + _piece(w, mu, s_hi, mu, cut_hi)


def prob_over_target(latency_ms: ArrayLike, p10: ArrayLike, p90: ArrayLike,
                     target_ms: ArrayLike) -> Reward:
    """P(LAT > T) under the latency law fitted to (p10, median, p90)."""
    mu, s_lo, s_hi = _spread(latency_ms, p10, p90, target_ms)
    return _out(latency_moment(0.0, mu, s_lo, s_hi, above=True))


def expected_mnasnet_reward(accuracy: ArrayLike, latency_ms: ArrayLike, p10: ArrayLike,
                            p90: ArrayLike, target_ms: ArrayLike, alpha: float = SOFT_W,
                            beta: float = SOFT_W) -> Reward:
    """E[ACC x (LAT/T)^w] with LAT drawn from the law fitted to (p10, median=latency_ms, p90).

    Why the expectation: the controller already maximises expected reward over its own samples;
    taking the expectation over the latency model's uncertainty as well keeps that objective
    exact instead of scoring the median as if it were certain. The latency law is lognormal
    (latency is positive and right-skewed, and per-op noise compounds multiplicatively), in two
    pieces so that a skewed (p10, median, p90) is matched exactly. Every term is a truncated
    lognormal moment in closed form, so this costs a few normal CDFs.

    What it does: under the hard constraint (alpha = 0, beta = -1) the reward is flat below T and
    falls above it, so a model whose median sits just under T but whose p90 is well over it is
    discounted by its risk of overrunning. Under the soft constraint x^w is smooth, so only where
    the latency mass lies matters: a spread symmetric in log-latency changes the reward by a
    factor exp(w^2 sigma^2 / 2), i.e. not at all in practice (the soft reward does not care where
    T is), while a right-skewed spread (p90 farther from the median than p10) counts as slower
    on average, as it should. With zero spread it equals `mnasnet_reward`.
    """
    acc = _finite("accuracy", accuracy, nonneg=True)
    alpha, beta = _exponent("alpha", alpha), _exponent("beta", beta)
    mu, s_lo, s_hi = _spread(latency_ms, p10, p90, target_ms)
    factor = latency_moment(alpha, mu, s_lo, s_hi, above=False) + latency_moment(beta, mu, s_lo, s_hi, above=True)
    return _out(acc * factor)


def expected_tunas_reward(quality: ArrayLike, latency_ms: ArrayLike, p10: ArrayLike, p90: ArrayLike,
                          target_ms: ArrayLike, beta: float = TUNAS_BETA) -> Reward:
    """E[Q + beta x |LAT/T - 1|] under the same fitted latency law (see `expected_mnasnet_reward`).

    |LAT/T - 1| is convex with its kink at T, so spread always costs: a model whose latency is
    uncertain around the target scores lower than one that is sure to hit it.
    """
    q = _finite("accuracy", quality)
    beta = _exponent("beta", beta)
    mu, s_lo, s_hi = _spread(latency_ms, p10, p90, target_ms)
    below = latency_moment(0.0, mu, s_lo, s_hi, False) - latency_moment(1.0, mu, s_lo, s_hi, False)
    above = latency_moment(1.0, mu, s_lo, s_hi, True) - latency_moment(0.0, mu, s_lo, s_hi, True)
    return _out(q + beta * (below + above))


# ---- configuration ---------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    """Which reward the search maximises, and its constants.

    kind "mnasnet": ACC x (LAT/T)^w with w = alpha (LAT <= T) or beta (LAT > T); alpha and beta
    default to the soft constraint -0.07. kind "tunas": Q + beta x |LAT/T - 1|, beta defaults to
    -0.10 (alpha unused). With variance_aware, calls that pass p10 and p90 score the expected
    reward under the latency model's spread; overrun_penalty (>= 0) then also subtracts
    overrun_penalty x P(LAT > T), a chance constraint for targets that must be met.
    """

    target_ms: float
    kind: Kind = "mnasnet"
    alpha: float | None = None
    beta: float | None = None
    variance_aware: bool = False
    overrun_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"must be one of {', '.join(KINDS)}, got {self.kind!r}", source="reward", field="kind")
        target = self.target_ms
        if (isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target)
                or target <= 0):
            raise UserError(f"must be a finite number > 0, got {target!r}", source="reward", field="target_ms")
        if self.kind == "tunas" and self.alpha is not None:
            raise UserError("is not used by the tunas reward (its cost is beta)", source="reward", field="alpha")
        alpha = (SOFT_W if self.kind == "mnasnet" else 0.0) if self.alpha is None else self.alpha
        beta = (SOFT_W if self.kind == "mnasnet" else TUNAS_BETA) if self.beta is None else self.beta
        object.__setattr__(self, "target_ms", float(target))
        object.__setattr__(self, "alpha", _exponent("alpha", alpha))
        object.__setattr__(self, "beta", _exponent("beta", beta))
        penalty = float(_finite("overrun_penalty", self.overrun_penalty, nonneg=True))
        object.__setattr__(self, "overrun_penalty", penalty)
        if not isinstance(self.variance_aware, bool):
            raise UserError(f"must be true or false, got {self.variance_aware!r}", source="reward",
                            field="variance_aware")

    @classmethod
    def soft(cls, target_ms: float, w: float = SOFT_W, **kw: Any) -> "RewardConfig":
        """MnasNet soft constraint alpha = beta = w (-0.07; MobileNetV3-Small used -0.15)."""
        return cls(target_ms=target_ms, kind="mnasnet", alpha=w, beta=w, **kw)

    @classmethod
    def hard(cls, target_ms: float, **kw: Any) -> "RewardConfig":
        """MnasNet hard constraint alpha = 0, beta = -1."""
        return cls(target_ms=target_ms, kind="mnasnet", alpha=0.0, beta=-1.0, **kw)

    @classmethod
    def tunas(cls, target_ms: float, beta: float = TUNAS_BETA, **kw: Any) -> "RewardConfig":
        """TuNAS absolute reward with cost beta (-0.10)."""
        return cls(target_ms=target_ms, kind="tunas", beta=beta, **kw)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> "RewardConfig":
        """From a config file's mapping; unknown keys are user errors naming the file."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(names))}",
                            source=source, field="reward")
        if "target_ms" not in data:
            raise UserError("missing", source=source, field="reward.target_ms")
        try:
            return cls(**data)
        except UserError as err:
            raise UserError(str(err), source=source, field="reward") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, accuracy: float, latency_ms: float, p10: float | None = None,
                 p90: float | None = None) -> float:
        """The reward of one trial (all arguments scalars)."""
        value = self.batch(accuracy, latency_ms, p10, p90)
        if np.ndim(value) != 0:
            raise UserError("takes scalars; use RewardConfig.batch for arrays", source="reward", field="accuracy")
        return float(value)

    def batch(self, accuracy: ArrayLike, latency_ms: ArrayLike, p10: ArrayLike | None = None,
              p90: ArrayLike | None = None) -> Reward:
        """The reward of many trials at once (arrays broadcast together)."""
        spread = self.variance_aware and p10 is not None and p90 is not None
        if self.variance_aware and (p10 is None) != (p90 is None):
            raise UserError("give both p10 and p90 or neither", source="reward", field="p10/p90")
        if not spread:
            if self.kind == "mnasnet":
                return mnasnet_reward(accuracy, latency_ms, self.target_ms, self.alpha, self.beta)
            return tunas_reward(accuracy, latency_ms, self.target_ms, self.beta)
        if self.kind == "mnasnet":
            value = expected_mnasnet_reward(accuracy, latency_ms, p10, p90, self.target_ms, self.alpha, self.beta)
        else:
            value = expected_tunas_reward(accuracy, latency_ms, p10, p90, self.target_ms, self.beta)
        if self.overrun_penalty:
            value = value - self.overrun_penalty * np.asarray(prob_over_target(latency_ms, p10, p90, self.target_ms))
        return _out(np.asarray(value))


# The rewards a run chooses by name: factory(target_ms, w) -> RewardConfig, w the space's soft exponent.
REWARDS.register("mnasnet", lambda target_ms, w: RewardConfig.soft(target_ms, w),
                 help="MnasNet's soft constraint ACC x (LAT/T)^w")
REWARDS.register("hard", lambda target_ms, w: RewardConfig.hard(target_ms),
                 help="MnasNet's hard constraint: no reward for exceeding the target (alpha 0, beta -1)")
REWARDS.register("tunas", lambda target_ms, w: RewardConfig.tunas(target_ms),
                 help="TuNAS's absolute reward Q - 0.10 |LAT/T - 1|")
