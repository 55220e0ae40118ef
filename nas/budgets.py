"""The one budget table: smoke, default and paper, each with what its search, its accuracy proxies and
its NetAdapt may spend. Every `--budget` flag takes its choices from `BUDGETS`.

    budget = get_budget("default")
    budget.search.samples, budget.accuracy.proxy, budget.netadapt.steps, budget.netadapt.in_pipeline()

Plain frozen data with no torch import, so that a command's flag errors answer at once.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from nas.accuracy.proxy_config import TrainConfig
from nas.supernet.supernet_config import SupernetConfig
from nas.runtime.registry import BUDGETS

# Chosen against ImageNet (docs/accuracy.md, "The default proxy"): at equal predicted latency the
# parameter count ranks Accel-NASBench's 500 audited networks with partial tau +0.63 +- 0.03, MACs
# +0.34, the best zero-cost score +0.50, Fashion-MNIST training +0.09 (N = 60); it costs nothing.
DEFAULT_PROXY = "params"


@dataclass(frozen=True)
class SearchBudget:
    """What the search spends. `default` fits in 15 minutes on a 2-core laptop CPU."""

    samples: int            # architectures the searcher evaluates
    batch_size: int         # controller PPO batch (MnasNet: one update per batch)
    proxy: str              # the search's default accuracy proxy
    map_networks: int       # networks trained to map a zero-cost score onto accuracy


@dataclass(frozen=True)
class AccuracyBudget:
    """How much a proxy, the audit's reference and the final comparison may spend.

    `proxy` is the training proxy a search calls ("train"); the audit also measures it shortened
    to each of `audit_epochs`, against `reference`: longer training on more data. `final` is the
    recipe the compare stage trains the final network and its baselines with, each at
    `final_seeds` seeds (paired by seed). `zero_cost_batch` is the minibatch the data-dependent
    zero-cost scores see. `supernet` is how `--proxy supernet` trains its one weight-sharing
    supernet and scores a path with it.
    """

    name: str
    proxy: TrainConfig
    reference: TrainConfig
    final: TrainConfig
    final_seeds: int
    audit_epochs: tuple[int, ...] = (1, 2)
    zero_cost_batch: int = 64
    supernet: SupernetConfig = SupernetConfig()


@dataclass(frozen=True)
class NetAdaptBudget:
    """How much NetAdapt spends: the seed's training, T per proposal, the final fine-tune, delta.

    `train` is the seed's training recipe; its data subset and batch size are the fine-tunes' too.
    Fine-tuning starts from trained weights, so its peak learning rate is `lr_scale` times the
    recipe's. `after_search` are the (field, value) changes when NetAdapt runs inside the pipeline,
    whose time the search shares.
    """

    name: str
    train: TrainConfig
    steps: int
    final_steps: int
    delta: float = 0.01
    lr_scale: float = 0.1
    parallel: str = "none"
    after_search: tuple[tuple[str, Any], ...] = ()

    def in_pipeline(self) -> "NetAdaptBudget":
        """This budget with its `after_search` changes applied: what the pipeline's NetAdapt spends."""
        return replace(self, **dict(self.after_search), after_search=())


@dataclass(frozen=True)
class Budget:
    """`baselines`: what the compare stage sets beside the final network at the target latency."""

    name: str
    search: SearchBudget
    accuracy: AccuracyBudget
    netadapt: NetAdaptBudget
    baselines: tuple[str, ...]


# Accuracy: sized on a 2-core CPU (experiments/benchmarks/proxy_throughput.py): a MobileNetV3-Large
# proxy at 32x32 trains at about 500 images/s there. `default` keeps the N=20 audit near 40 minutes;
# `paper` is MnasNet's protocol on the proxy task (5 epochs on the whole training pool). The
# one-epoch proxies take a higher peak rate than the standard rule: 31 steps at batch 64 learn
# far more at 0.25 than at 0.05 (about 0.5 against 0.2 top-1 on Fashion-MNIST).
_ACCURACY = {
    "smoke": AccuracyBudget(
        name="smoke",
        proxy=TrainConfig(train_images=256, val_images=256, epochs=1, batch_size=32, lr=0.125, bn_images=128),
        reference=TrainConfig(train_images=512, val_images=256, epochs=2, batch_size=32, bn_images=128),
        final=TrainConfig(train_images=256, val_images=256, epochs=2, batch_size=32, lr=0.125, bn_images=128),
        final_seeds=2,
        zero_cost_batch=16,
        supernet=SupernetConfig(epochs=2, train_images=1024, val_images=256, batch_size=32, paths=3, bn_images=128),
    ),
    "default": AccuracyBudget(
        name="default",
        proxy=TrainConfig(train_images=2000, val_images=2000, epochs=1, batch_size=64, lr=0.25),
        reference=TrainConfig(train_images=10000, val_images=5000, epochs=5, batch_size=128),
        final=TrainConfig(train_images=4000, val_images=5000, epochs=4, batch_size=64, lr=0.2),
        final_seeds=3,
    ),
    "paper": AccuracyBudget(
        name="paper",
        proxy=TrainConfig(train_images=50000, val_images=10000, epochs=5, batch_size=128, bn_images=2000),
        reference=TrainConfig(train_images=50000, val_images=10000, epochs=30, batch_size=128, bn_images=2000),
        final=TrainConfig(train_images=50000, val_images=10000, epochs=30, batch_size=128, bn_images=2000),
        final_seeds=3,
        audit_epochs=(1, 2, 5),
        zero_cost_batch=128,
        supernet=SupernetConfig(epochs=30, train_images=50000, val_images=10000, bn_images=2000),
    ),
}


def _seed_recipe(name: str, **changes: Any) -> TrainConfig:
    return replace(_ACCURACY[name].proxy, **changes)


# NetAdapt: sized on a 2-core CPU where MobileNetV3-Small at 32x32 trains at ~1,300 images/s. `paper`
# keeps the paper's ratio rather than its 10,000 steps: T there was ~10% of a full ImageNet training,
# and 200 steps is ~10% of that budget's proxy training; it runs its proposals as Ray Tune trials.
# After a search, smoke and default take larger steps (delta) so that NetAdapt fits the run's time,
# and skip the final fine-tune: the compare stage trains the final network from scratch anyway, so
# the fine-tune's accuracy was a number nobody used (49 s of the default run's 1,030 s).
_NETADAPT = {
    "smoke": NetAdaptBudget("smoke", _seed_recipe("smoke", epochs=4), steps=4, final_steps=0, delta=0.05,
                            after_search=(("delta", 0.1),)),
    "default": NetAdaptBudget("default", _seed_recipe("default", epochs=5), steps=20, final_steps=300,
                              after_search=(("delta", 0.04), ("final_steps", 0))),
    "paper": NetAdaptBudget("paper", _seed_recipe("paper"), steps=200, final_steps=2000, parallel="ray"),
}

# Search: the N=20 audit (docs/benchmarks.md) ranks every proxy within its reference's noise (ceiling tau 0.24);
# MACs ranks first there (tau 0.40) and second against published ImageNet top-1, and costs nothing, so the
# default budget can afford thousands of samples and spends its training on NetAdapt. 2,000 samples: where
# the default search (guided-evolution) has converged on ImageNet ground truth (within 0.13 points of the
# best known network at every target, experiments/benchmarks/search_on_groundtruth.py). The paper budget
# trains every sample for 5 epochs, as MnasNet did, on Ray. batch_size is the controller's PPO batch.
_SEARCH = {
    "smoke": SearchBudget(samples=96, batch_size=16, proxy=DEFAULT_PROXY, map_networks=3),
    "default": SearchBudget(samples=2000, batch_size=16, proxy=DEFAULT_PROXY, map_networks=8),
    "paper": SearchBudget(samples=8000, batch_size=64, proxy="train-5ep", map_networks=0),
}

# The compare stage's baselines: the width-scaled MobileNetV3 costs only its trainings; NetAdapt on
# the family's MobileNetV3 costs a NetAdapt run and three more trainings (360 s of the default run's
# 1,030 s on 2 cores, measured), so from the default budget down it is asked for with --baselines.
_BASELINES = {"smoke": ("width_scaled",), "default": ("width_scaled",),
              "paper": ("width_scaled", "netadapted")}

_HELP = {"smoke": "a few minutes: does it run", "default": "under 15 minutes on a 2-core CPU",
         "paper": "a cluster's worth"}
for _name in ("smoke", "default", "paper"):
    BUDGETS.register(_name, Budget(_name, search=_SEARCH[_name], accuracy=_ACCURACY[_name],
                                   netadapt=_NETADAPT[_name], baselines=_BASELINES[_name]), help=_HELP[_name])


def get_budget(name: str) -> Budget:
    return BUDGETS.lookup(name)
