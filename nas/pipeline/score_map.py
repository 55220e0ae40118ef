"""The zero-cost score -> accuracy map that gives a cheap proxy's reward term an accuracy's scale."""
from __future__ import annotations

import math

import numpy as np

from nas.accuracy.proxy import make_proxy
from nas.budgets import Budget


# Spearman rho of each zero-cost score against 5-epoch reference training, from the N=20 audit
# (python -m nas.proxies audit --space mobilenetv3_small --samples 20 --budget default).
AUDITED_RHO = {"zen": 0.175, "synflow": 0.095, "naswot": 0.181, "grad_norm": -0.075, "params": 0.142, "macs": 0.344}
UNAUDITED_RHO = 0.5
SCORE_SAMPLES = 64


def fit_score_map(space, proxy, proxy_name: str, budget: Budget, data, seed: int) -> dict[str, float]:
    """Map a zero-cost score onto proxy-task accuracy, so that the reward's accuracy term has the
    scale of a real accuracy: accuracy = mean + rho * sd_acc * (score - mean_score) / sd_score.

    A least-squares fit on the few networks a budget can train is mostly noise (one-epoch
    accuracies of 8 Large-space networks spread 0.55-0.74 with no relation to Zen-score, slope
    below 0). So the slope is the regression slope implied by the audited rank correlation rho:
    the trained networks give the accuracy scale (mean, sd), many cheap scores the score's scale.
    """
    trainer = make_proxy("train", budget.name, data=data, seed=seed)
    rng = np.random.default_rng(seed + 7919)
    trained = [space.seed_spec()] + [space.sample_spec(rng) for _ in range(max(2, budget.search.map_networks) - 1)]
    accs = [float(r["accuracy"]) for r in map(trainer.evaluate, trained) if not r.get("failed")]
    scores = [float(r["score"]) for r in (proxy.evaluate(space.sample_spec(rng)) for _ in range(SCORE_SAMPLES))
              if not r.get("failed") and r.get("score") is not None and math.isfinite(r["score"])]
    rho = AUDITED_RHO.get(proxy_name, UNAUDITED_RHO)
    mean_acc = float(np.mean(accs)) if accs else 0.5
    sd_acc = float(np.std(accs)) if len(accs) > 1 else 0.0
    sd_score = float(np.std(scores)) if len(scores) > 1 else 0.0
    slope = max(0.0, rho) * sd_acc / sd_score if sd_score > 0 else 0.0  # no evidence, no reward
    intercept = mean_acc - slope * (float(np.mean(scores)) if scores else 0.0)
    return {"slope": slope, "intercept": intercept, "rho": rho, "accuracy_mean": mean_acc, "accuracy_sd": sd_acc,
            "score_mean": float(np.mean(scores)) if scores else None, "score_sd": sd_score,
            "trained": len(accs), "scored": len(scores), "accuracies": accs}
