"""TuNAS's joint search (`--algorithm tunas`): the supernet's weights and the controller learn together.

During the warm-up (the first `warmup` of the steps) the supernet trains on uniformly sampled paths
and the controller is frozen, so that every option's weights are worth judging before it learns.
After it, the random paths of each weight step come from the controller, and every `every` steps
the controller samples `paths` architectures, scores each on the next validation batch through the
shared weights (batch statistics, no dropout: TuNAS's cheap estimate), and takes one REINFORCE step
on the run's reward (by default TuNAS's absolute reward) against an EMA baseline, with Adam's
beta1 = 0 as TuNAS uses.

The learner is the supernet training's `policy` (what draws its random paths) and is saved with
its checkpoint, so a resumed joint training continues exactly. The search stage then continues from
the trained controller on the finished supernet, scoring with BN re-estimated per path.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from nas.core.space import SearchSpace
from nas.runtime.errors import UserError
from nas.search.controller import Controller, ControllerConfig

# REINFORCE, one gradient step per update, Adam beta1 = 0 and an EMA baseline of 0.95 (TuNAS).
TUNAS_CONTROLLER_CONFIG = ControllerConfig(algorithm="reinforce", adam_beta1=0.0, lr=3e-3, baseline_decay=0.95)


@dataclass(frozen=True)
class JointConfig:
    warmup: float = 0.25   # fraction of the weight steps with uniform paths and the controller frozen
    paths: int = 4         # architectures per controller update
    every: int = 1         # weight steps per controller update

    def __post_init__(self):
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, (int, float)) or not 0 <= self.warmup < 1:
            raise UserError(f"must be in [0, 1), got {self.warmup!r}", setting="warmup")
        for name in ("paths", "every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"must be a positive integer, got {v!r}", setting=name)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class JointLearner:
    """The controller side of a joint training: draws the supernet's paths, learns after each step."""

    def __init__(self, space: SearchSpace, device, reward, total_steps: int, config: JointConfig = JointConfig(),
                 seed: int = 0):
        self.space, self.device, self.reward, self.config = space, device, reward, config
        self.warmup_steps = int(round(config.warmup * total_steps))
        self.controller = Controller([(d.kind, len(d.choices)) for d in space.decisions], TUNAS_CONTROLLER_CONFIG,
                                     seed=seed)
        self.seed = seed
        self.history: list[dict[str, float]] = []  # one record per controller update
        self.step = 0  # weight steps seen (the training's own count, kept for the warm-up test)

    @property
    def learning(self) -> bool:
        return self.step >= self.warmup_steps

    # ---- the training's policy ---------------------------------------------------------------
    def __call__(self, rng: np.random.Generator) -> Sequence[int]:
        if not self.learning:
            return self.space.sample(rng)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        with torch.no_grad():
            return self.controller.sample(1, gen).tokens[0].tolist()

    def after_step(self, training) -> None:
        """One controller update every `every` weight steps after the warm-up."""
        self.step = training.step
        after = self.step - self.warmup_steps  # weight steps since the warm-up's last
        if after < 1 or (after - 1) % self.config.every:
            return
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
        with torch.no_grad():
            sample = self.controller.sample(self.config.paths, gen)
        tokens = sample.tokens.tolist()
        specs = [self.space.decode(t) for t in tokens]
        x, y = self._val_batch(training)
        accuracy = np.array([self._accuracy(training, spec, x, y) for spec in specs])
        pred = np.array([(q.ms, q.p10, q.p90) for q in map(self.device.predict, specs)], dtype=float)
        rewards = np.asarray(self.reward.batch(accuracy, pred[:, 0], pred[:, 1], pred[:, 2]), dtype=float)
        stats = self.controller.update(tokens, rewards, sample.log_probs)
        self.history.append({"step": self.step, "reward": float(rewards.mean()), "accuracy": float(accuracy.mean()),
                             "latency_ms": float(pred[:, 0].mean()), "entropy": stats["entropy"]})

    def _val_batch(self, training):
        """The validation images in turn, one batch of the training's size per update."""
        data, b = training.data, training.batch_size
        n = int(data.val_x.shape[0])
        start = (len(self.history) * b) % max(n, 1)
        idx = torch.arange(start, start + min(b, n), device=data.device) % n
        return data.inputs(data.val_x[idx]), data.val_y[idx]

    @staticmethod
    def _accuracy(training, spec, x, y) -> float:
        net = training.net
        net.train()  # batch statistics: the shared running ones belong to no path
        for m in net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.eval()
        with torch.no_grad():
            out = net(x, net.adapt(spec))
        net.train()
        return float((out.argmax(1) == y).float().mean()) if torch.isfinite(out).all() else 0.0

    # ---- what the search continues from ------------------------------------------------------
    def greedy(self) -> list[int]:
        with torch.no_grad():
            return self.controller.greedy()

    def summary(self) -> dict[str, Any]:
        """How the controller learned: reward and entropy over its first and last tenth of updates."""
        h = self.history
        tenth = max(1, len(h) // 10)

        def mean(key, part):
            return float(np.mean([r[key] for r in part])) if part else None

        return {"updates": len(h), "warmup_steps": self.warmup_steps, "greedy_tokens": self.greedy(),
                **{f"{key}_{when}": mean(key, part) for key in ("reward", "accuracy", "latency_ms", "entropy")
                   for when, part in (("first", h[:tenth]), ("last", h[-tenth:]))}}

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "history": list(self.history), "step": self.step,
                "config": self.config.as_dict(), "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.history, self.step = list(state["history"]), int(state["step"])
