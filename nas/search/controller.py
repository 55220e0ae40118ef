"""The MnasNet-style controller: an LSTM policy over a factorized search space, trained with PPO.

The policy emits one token per decision, in order. Step 0 reads a learned start vector; step d
reads the embedding of the token chosen at step d-1, so later choices are conditioned on earlier
ones (NASNet/ENAS/MnasNet). Each step's hidden state goes through a linear softmax head, one per
decision by default. With `share="kind"`, decisions of the same kind and size (every stage's
kernel choice, say) share a head and an embedding, as ENAS shares them across layers, and only
the LSTM state tells the stages apart: fewer weights, but on a toy bandit whose best choice
differs per stage it learns far more slowly, so it is not the default.

Training is sample -> evaluate -> update: `update(tokens, rewards)` does PPO (clipped surrogate,
a few epochs per batch, MnasNet) or REINFORCE (ENAS, TuNAS) against an exponential-moving-average
reward baseline, with an entropy bonus, using Adam. The controller owns its torch.Generator, so a
seed fixes everything, and `state_dict()` captures weights, optimizer, baseline and the generator
so a restored controller continues the exact same stream.

Defaults follow NASNet's controller, which MnasNet reuses: one LSTM layer of 100 units, weights
uniform in [-0.1, 0.1], PPO with learning rate 0.00035, entropy weight 1e-5, baseline decay 0.95.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from nas.runtime.errors import UserError

FORMAT = 1


# ---- decisions -------------------------------------------------------------------------------

def normalize_decisions(decisions: Sequence[Any]) -> list[tuple[str | None, int]]:
    """(kind, num_choices) per decision, from ints, (kind, n) pairs or objects with .kind/.choices.

    Objects with `.choices` (nas.core.space's `Decision`) are read by duck typing so this module does
    not depend on the search space.
    """
    out: list[tuple[str | None, int]] = []
    for i, d in enumerate(decisions):
        if hasattr(d, "choices"):
            kind, n = getattr(d, "kind", None), d.choices
        elif isinstance(d, (tuple, list)) and len(d) == 2:
            kind, n = d
        else:
            kind, n = None, d
        if isinstance(n, (list, tuple, range)):
            n = len(n)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise UserError(f"decision {i} needs a number of choices >= 1, got {n!r}", source="controller",
                            field="decisions")
        out.append((None if kind is None else str(kind), int(n)))
    if not out:
        raise UserError("the search space has no decisions", source="controller", field="decisions")
    return out


# ---- configuration ---------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ControllerConfig:
    """Policy shape and training constants (see the module docstring for where they come from)."""

    hidden: int = 100
    share: Literal["kind", "decision"] = "decision"
    temperature: float = 1.0            # ENAS: logits / T before sampling
    tanh_constant: float | None = None  # ENAS: C * tanh(logits / T) bounds logits to +-C (2.5 there)
    algorithm: Literal["ppo", "reinforce"] = "ppo"
    lr: float = 3.5e-4
    adam_beta1: float = 0.9             # TuNAS uses 0.0 with REINFORCE
    ppo_epochs: int = 4
    clip: float = 0.2
    entropy_weight: float = 1e-5
    baseline_decay: float = 0.95        # per update, i.e. per batch
    normalize_advantages: bool = True
    max_grad_norm: float | None = 1.0
    init_range: float = 0.1

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> UserError:
            return UserError(f"{why}, got {getattr(self, field)!r}", source="controller", field=field)

        def number(field: str) -> float:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad(field, "must be a finite number")
            return float(value)

        for field, top in (("hidden", 4096), ("ppo_epochs", 100)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise bad(field, f"must be an integer in 1..{top}")
        if self.share not in ("kind", "decision"):
            raise bad("share", "must be 'kind' or 'decision'")
        if self.algorithm not in ("ppo", "reinforce"):
            raise bad("algorithm", "must be 'ppo' or 'reinforce'")
        for field in ("temperature", "lr", "init_range"):
            if number(field) <= 0:
                raise bad(field, "must be > 0")
        if not 0 < number("clip") < 1:
            raise bad("clip", "must be in (0, 1)")
        if not 0 <= number("adam_beta1") < 1:
            raise bad("adam_beta1", "must be in [0, 1)")
        if not 0 <= number("baseline_decay") < 1:
            raise bad("baseline_decay", "must be in [0, 1)")
        if number("entropy_weight") < 0:
            raise bad("entropy_weight", "must be >= 0")
        for field in ("tanh_constant", "max_grad_norm"):
            if getattr(self, field) is not None and number(field) <= 0:
                raise bad(field, "must be > 0 or null")
        if not isinstance(self.normalize_advantages, bool):
            raise bad("normalize_advantages", "must be true or false")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> "ControllerConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown key(s) {', '.join(unknown)}", source=source, field="controller")
        try:
            return cls(**data)
        except UserError as err:
            raise UserError(str(err), source=source, field="controller") from None


# ---- policy ----------------------------------------------------------------------------------

class LSTMPolicy(nn.Module):
    """The network: start vector, token embeddings, one LSTM layer, linear heads.

    Embeddings and heads are packed: head h owns rows/columns [offset_h, offset_h + size_h) of
    `embed` and `head_w`, so a step is a slice and teacher forcing is a single gather.
    """

    def __init__(self, decisions: list[tuple[str | None, int]], hidden: int, share: str):
        super().__init__()
        keys: dict[Any, int] = {}
        head_of = []
        for i, (kind, n) in enumerate(decisions):
            key = (kind, n) if share == "kind" and kind is not None else i
            head_of.append(keys.setdefault(key, len(keys)))
        sizes = [0] * len(keys)
        for (_, n), h in zip(decisions, head_of):
            sizes[h] = n
        head_offset = np.concatenate([[0], np.cumsum(sizes)])
        self.choices = [n for _, n in decisions]
        self.offsets = [int(head_offset[h]) for h in head_of]    # first packed row of each decision
        total, cmax = int(head_offset[-1]), max(self.choices)

        self.start = nn.Parameter(torch.empty(1, hidden))
        self.embed = nn.Parameter(torch.empty(total, hidden))
        self.lstm = nn.LSTM(hidden, hidden, num_layers=1, batch_first=True)
        self.head_w = nn.Parameter(torch.empty(hidden, total))
        self.head_b = nn.Parameter(torch.empty(total))
        cols = torch.tensor([[o + min(j, n - 1) for j in range(cmax)] for o, n in zip(self.offsets, self.choices)])
        self.register_buffer("cols", cols, persistent=False)                       # (D, Cmax)
        self.register_buffer("valid", torch.arange(cmax)[None, :] < torch.tensor(self.choices)[:, None],
                             persistent=False)                                    # (D, Cmax)
        self.register_buffer("row0", torch.tensor(self.offsets), persistent=False)  # (D,)

    def teacher_forced_logits(self, tokens: torch.Tensor, scale) -> torch.Tensor:
        """Logits (n, D, Cmax) of every decision given the tokens before it; padding is -inf."""
        n, d = tokens.shape
        prev = self.embed[(self.row0[None, :-1] + tokens[:, :-1])]             # (n, D-1, H)
        inputs = torch.cat([self.start.expand(n, 1, -1), prev], dim=1)
        out, _ = self.lstm(inputs)
        full = torch.matmul(out, self.head_w) + self.head_b                     # (n, D, total)
        logits = full.gather(2, self.cols.expand(n, -1, -1))
        return scale(logits).masked_fill(~self.valid, -math.inf)

    @torch.no_grad()
    def rollout(self, n: int, noise: torch.Tensor | None, scale) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample tokens step by step (Gumbel-max with `noise`, argmax when it is None).

        Runs the LSTM cell by hand on the nn.LSTM weights so that the input projection of every
        embedding is computed once per call, not once per step.
        """
        w_ih, w_hh = self.lstm.weight_ih_l0, self.lstm.weight_hh_l0
        bias = self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0
        x_proj = torch.addmm(bias, self.embed, w_ih.t())                        # (total, 4H)
        gates_x = torch.addmm(bias, self.start, w_ih.t()).expand(n, -1)
        w_hh_t = w_hh.t()
        hsz = w_hh.shape[1]
        h = torch.zeros(n, hsz)
        c = torch.zeros(n, hsz)
        steps = len(self.choices)
        logits = torch.full((n, steps, self.valid.shape[1]), -math.inf)
        tokens = torch.empty(n, steps, dtype=torch.long)
        for d, (row, k) in enumerate(zip(self.offsets, self.choices)):
            gates = torch.addmm(gates_x, h, w_hh_t)
            sig = gates.sigmoid()
            c = sig[:, hsz:2 * hsz] * c + sig[:, :hsz] * gates[:, 2 * hsz:3 * hsz].tanh()
            h = sig[:, 3 * hsz:] * c.tanh()
            step = scale(torch.addmm(self.head_b[row:row + k], h, self.head_w[:, row:row + k]))
            logits[:, d, :k] = step
            tok = (step if noise is None else step + noise[:, d, :k]).argmax(1)
            tokens[:, d] = tok
            gates_x = x_proj[row + tok]
        return tokens, logits


class Sample(NamedTuple):
    tokens: torch.Tensor     # (n, D) int64, tokens[i, d] in [0, choices[d])
    log_probs: torch.Tensor  # (n,) log P(architecture) = sum over decisions
    entropies: torch.Tensor  # (n,) sum over decisions of each step's entropy given the sampled prefix


def _log_prob_entropy(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp = logits.log_softmax(-1)
    chosen = logp.gather(2, tokens.unsqueeze(-1)).squeeze(-1).sum(1)
    # Padded entries have p = 0 and logp = -inf; zero logp there so 0 * logp is 0, not NaN.
    entropy = -(logp.exp() * logp.masked_fill(logits == -math.inf, 0.0)).sum(-1).sum(1)
    return chosen, entropy


def ppo_surrogate(logp: torch.Tensor, old_log_probs: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped objective per sample, min(r A, clip(r, 1 - eps, 1 + eps) A), r = exp(logp - old).

    A sample whose ratio has left [1 - eps, 1 + eps] in the direction its advantage pushes (r > 1 + eps
    with A > 0, r < 1 - eps with A < 0) contributes no gradient; in the other direction it keeps r A.
    """
    ratio = torch.exp(logp - old_log_probs)
    return torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)


# ---- controller ------------------------------------------------------------------------------

class Controller:
    """Sample architectures as token lists and learn from their rewards."""

    def __init__(self, decisions: Sequence[Any], config: ControllerConfig | None = None, seed: int = 0):
        self.decisions = normalize_decisions(decisions)
        self.config = config or ControllerConfig()
        self.generator = torch.Generator().manual_seed(int(seed))
        # nn.LSTM's constructor draws its default init from the global RNG; fork it so building a
        # controller leaves the caller's random stream untouched (the weights are redrawn below).
        with torch.random.fork_rng(devices=[]):
            self.policy = LSTMPolicy(self.decisions, self.config.hidden, self.config.share)
        with torch.no_grad():
            r = self.config.init_range
            for p in self.policy.parameters():
                p.copy_(torch.rand(p.shape, generator=self.generator) * 2 * r - r)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.lr,
                                          betas=(self.config.adam_beta1, 0.999))
        self.baseline: float | None = None
        self.adv_var: float | None = None
        self.updates = 0

    @property
    def choices(self) -> list[int]:
        return [n for _, n in self.decisions]

    def _scale(self, logits: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.temperature != 1.0:
            logits = logits / cfg.temperature
        if cfg.tanh_constant is not None:
            logits = cfg.tanh_constant * torch.tanh(logits)
        return logits

    def sample(self, n: int, generator: torch.Generator | None = None) -> Sample:
        """n architectures in parallel, with their log-probabilities and entropies."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        n = int(n)
        shape = (n, len(self.decisions), self.policy.valid.shape[1])
        u = torch.rand(shape, generator=generator or self.generator).clamp_(min=1e-20)
        tokens, logits = self.policy.rollout(n, -torch.log(-torch.log(u)), self._scale)
        log_probs, entropies = _log_prob_entropy(logits, tokens)
        return Sample(tokens, log_probs, entropies)

    def _tokens(self, tokens: Any) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != len(self.decisions):
            raise ValueError(f"tokens must have shape (n, {len(self.decisions)}), got {tuple(t.shape)}")
        if t.shape[0] and ((t < 0).any() or (t >= torch.tensor(self.choices)).any()):
            raise ValueError("a token is out of range for its decision")
        return t

    def log_prob(self, tokens: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable log P(tokens) and entropy per architecture under the current policy."""
        t = self._tokens(tokens)
        return _log_prob_entropy(self.policy.teacher_forced_logits(t, self._scale), t)

    def greedy(self) -> list[int]:
        """The most likely token at each step given the greedy prefix (not always the global mode)."""
        tokens, _ = self.policy.rollout(1, None, self._scale)
        return tokens[0].tolist()

    argmax = greedy

    def probs(self, tokens: Any = None) -> list[list[float]]:
        """Each decision's choice probabilities given the prefix of `tokens` (default: greedy)."""
        t = self._tokens(self.greedy() if tokens is None else tokens)[:1]
        with torch.no_grad():
            p = self.policy.teacher_forced_logits(t, self._scale).softmax(-1)[0]
        return [p[d, :k].tolist() for d, k in enumerate(self.choices)]

    def _advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """Rewards minus the EMA baseline, optionally scaled by an EMA of their RMS.

        The baseline used is the one from before this batch, so it does not depend on the batch
        (no bias); the first batch starts it at its mean. The scale includes this batch, which
        bounds the batch's advantage RMS by 1/sqrt(1 - decay) (about 4.5 at 0.95).
        """
        decay, mean = self.config.baseline_decay, float(rewards.mean())
        base = mean if self.baseline is None else self.baseline
        adv = rewards - base
        self.baseline = decay * base + (1 - decay) * mean
        if self.config.normalize_advantages:
            sq = float((adv ** 2).mean())
            self.adv_var = sq if self.adv_var is None else decay * self.adv_var + (1 - decay) * sq
            adv = adv / max(math.sqrt(self.adv_var), 1e-8)
        return adv

    def update(self, tokens: Any, rewards: Any, old_log_probs: torch.Tensor | None = None) -> dict[str, float]:
        """One policy update from a batch of (tokens, reward); returns its statistics.

        old_log_probs: the sampling policy's log-probabilities, if it has changed since; by default
        the current policy is taken as the one that sampled them.
        """
        cfg = self.config
        t = self._tokens(tokens)
        r = torch.as_tensor(np.asarray(rewards, dtype=np.float32)).reshape(-1)
        if t.shape[0] == 0:
            raise ValueError("update needs at least one sample")
        if r.shape[0] != t.shape[0]:
            raise ValueError(f"{t.shape[0]} token rows but {r.shape[0]} rewards")
        if not torch.isfinite(r).all():
            raise ValueError("rewards must be finite")
        if old_log_probs is None:
            with torch.no_grad():
                old_log_probs, _ = self.log_prob(t)
        old_log_probs = old_log_probs.detach().reshape(-1)
        adv = self._advantages(r)
        epochs = cfg.ppo_epochs if cfg.algorithm == "ppo" else 1
        for epoch in range(epochs):
            logp, entropy = self.log_prob(t)
            if cfg.algorithm == "ppo":
                surrogate = ppo_surrogate(logp, old_log_probs, adv, cfg.clip)
            else:
                surrogate = logp * adv
            loss = -surrogate.mean() - cfg.entropy_weight * entropy.mean()
            if epoch == 0:
                first_entropy = float(entropy.detach().mean())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
        self.updates += 1
        with torch.no_grad():
            log_ratio = self.log_prob(t)[0] - old_log_probs
            ratio = log_ratio.exp()
        return {
            "loss": float(loss.detach()),
            "entropy": first_entropy,
            "baseline": float(self.baseline),
            "approx_kl": float(((ratio - 1) - log_ratio).mean()),   # k3 estimator, >= 0
            "clip_frac": float(((ratio - 1).abs() > cfg.clip).float().mean()),
            "reward_mean": float(r.mean()),
            "updates": self.updates,
        }

    # ---- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimizer, baseline, RNG state."""
        return {
            "format": FORMAT,
            "decisions": [list(d) for d in self.decisions],
            "config": asdict(self.config),
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "adv_var": self.adv_var,
            "updates": self.updates,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != FORMAT:
            raise UserError(f"unknown controller checkpoint format {state.get('format')!r}",
                            source="controller", field="format")
        if [tuple(d) for d in state["decisions"]] != self.decisions:
            raise UserError("checkpoint was made for a different search space", source="controller",
                            field="decisions")
        changed = [k for k, v in asdict(self.config).items() if state["config"].get(k) != v]
        if changed:
            raise UserError(f"checkpoint was made with different settings: {', '.join(changed)}",
                            source="controller", field="config")
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline, self.adv_var = state["baseline"], state["adv_var"]
        self.updates = int(state["updates"])
        self.generator.set_state(state["generator"])
