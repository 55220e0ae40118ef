"""TuNAS's joint search: the controller is frozen through the warm-up, then draws the supernet's paths
and takes one REINFORCE step after every weight step; a joint training resumes exactly."""
from dataclasses import replace

import numpy as np
import torch

from nas.core.space import load_space
from nas.latency.devices import get_device
from nas.search.joint import JointConfig, JointLearner
from nas.search.reward import RewardConfig
from nas.supernet.path_training import SupernetTraining
from helpers.supernet import CONFIG, TINY, patch_data

STEPS = CONFIG.epochs * (256 // CONFIG.batch_size)  # patch_data's 256 training images: 16 steps


def joint(space, seed=3, warmup=0.25):
    return SupernetTraining(space, patch_data(), replace(CONFIG, sampler="uniform"), seed=seed,
                            policy=JointLearner(space, get_device("pixel1"), RewardConfig.tunas(1.2), STEPS,
                                                JointConfig(warmup=warmup, paths=3), seed=seed))


def test_the_controller_waits_out_the_warm_up_then_learns_after_every_step():
    space = load_space(TINY)
    training = joint(space)
    learner = training.policy
    assert learner.warmup_steps == 4 and training.total_steps == STEPS
    # Warm-up: uniform draws, exactly the space's own.
    assert list(learner(np.random.default_rng(7))) == list(space.sample(np.random.default_rng(7)))
    before = [p.clone() for p in learner.controller.policy.parameters()]
    training.run()
    assert [h["step"] for h in learner.history] == list(range(5, STEPS + 1))  # one update after each later step
    assert learner.controller.updates == STEPS - 4
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.controller.policy.parameters()))
    for h in learner.history:
        assert 0 <= h["accuracy"] <= 1 and h["latency_ms"] > 0 and np.isfinite(h["reward"])
    # After it, the paths are the controller's samples.
    rng, copy = np.random.default_rng(11), np.random.default_rng(11)
    gen = torch.Generator().manual_seed(int(copy.integers(2**62)))
    assert list(learner(rng)) == learner.controller.sample(1, gen).tokens[0].tolist()
    summary = learner.summary()
    assert summary["updates"] == STEPS - 4 and len(summary["greedy_tokens"]) == len(space.decisions)


def test_a_joint_training_resumes_exactly(tmp_path):
    space = load_space(TINY)
    straight = joint(space)
    straight.run()
    first = joint(space)
    first.run(until=1)
    torch.save(first.state_dict(), tmp_path / "supernet.pt")
    resumed = joint(space)
    resumed.load_state_dict(torch.load(tmp_path / "supernet.pt", weights_only=True))
    resumed.run()
    for (name, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(straight.policy.controller.policy.parameters(), resumed.policy.controller.policy.parameters()):
        assert torch.equal(a, b)
    assert resumed.policy.history == straight.policy.history


def test_no_warm_up_learns_from_the_first_step():
    training = joint(load_space(TINY), warmup=0.0)
    training.run(until=1)
    assert training.policy.history[0]["step"] == 1 and len(training.policy.history) == STEPS // 2
