"""nas.train's recipe: the paper's numbers, their scaling to a batch and a length, the EMA, the
schedule, and the one-line refusals of the pieces (batch split, resume identity, --init shapes)."""
import pytest
import torch

from helpers.data import TINY
from nas.core.model import build_model
from nas.runtime.errors import UserError
from nas.train.training_state import check_identity
from nas.train.training_loop import EMA, check_fits
from nas.train.recipe import PAPER, LrSchedule, ema_decay_at, scale_recipe, split_batch


def test_paper_numbers():
    assert PAPER.steps_per_epoch == pytest.approx(1_281_167 / 4096)
    # 0.99 every 3 epochs over 350 epochs; a time constant of 5,000 steps out of 350 x 312.8
    assert PAPER.total_decay == pytest.approx(0.99 ** (350 / 3))
    assert PAPER.total_decay == pytest.approx(0.3096, abs=1e-4)
    assert PAPER.ema_fraction == pytest.approx(5000 / (350 * 1_281_167 / 4096))
    assert PAPER.ema_fraction == pytest.approx(0.0457, abs=1e-4)


def test_default_scaling_for_fashion_mnist():
    r = scale_recipe(batch_size=128, steps_per_epoch=390, epochs=10)
    assert r.lr == pytest.approx(0.1 * 128 / 4096) and r.total_steps == 3900 and r.warmup_steps == 195
    assert (r.optimizer, r.momentum, r.weight_decay, r.dropout) == ("rmsprop", 0.9, 1e-5, 0.2)
    # the EMA's time constant is the same fraction of this training as of the paper's
    assert 1 / (1 - r.ema_decay) / r.total_steps == pytest.approx(PAPER.ema_fraction)
    assert r.ema_decay == pytest.approx(1 - 1 / (PAPER.ema_fraction * 3900))


def test_learning_rate_is_linear_in_the_batch_and_the_ema_follows_the_length():
    a, b = scale_recipe(64, 100, 4), scale_recipe(256, 100, 4)
    assert b.lr == pytest.approx(4 * a.lr)
    short, long = scale_recipe(128, 100, 2), scale_recipe(128, 100, 20)
    assert 1 / (1 - long.ema_decay) == pytest.approx(10 / (1 - short.ema_decay))
    assert scale_recipe(128, 5, 1).ema_decay == 0.0  # a time constant under one step: the EMA is the model


def test_schedule_warms_up_then_decays_as_the_paper_per_fraction_of_training():
    r = scale_recipe(128, 350, 10)  # 3,500 steps: the paper's 3 of 350 epochs are 30 steps here
    f = LrSchedule(r)
    assert f(0) == pytest.approx(1 / r.warmup_steps)
    assert f(r.warmup_steps - 1) == pytest.approx(r.final_lr_fraction ** ((r.warmup_steps - 1) / 3500))
    assert f(r.total_steps) == pytest.approx(r.final_lr_fraction)
    after = [f(t) for t in range(r.warmup_steps, r.total_steps + 1)]
    assert all(x > y for x, y in zip(after, after[1:]))
    # 0.99 every 3/350 of the run, the paper's 3 epochs out of 350
    assert f(600 + 30) / f(600) == pytest.approx(0.99)


def test_ema_decay_starts_low_as_tensorflows():
    r = scale_recipe(128, 390, 10)
    assert ema_decay_at(r, 0) == pytest.approx(0.1) and ema_decay_at(r, 90) == pytest.approx(0.91)
    assert ema_decay_at(r, 10**6) == r.ema_decay


def test_ema_update_is_the_moving_average():
    torch.manual_seed(0)
    model = build_model(TINY)
    ema = EMA(model)
    r = scale_recipe(128, 390, 10)
    before = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.add_(3.0)
                m.num_batches_tracked.add_(5)
    ema.update(model, r)
    ema.update(model, r)
    w = 1 - 0.1  # first update: decay 1/10; second: 2/11
    w2 = 1 - 2 / 11
    after = ema.model.state_dict()
    name = "stem.0.weight"
    new = model.state_dict()[name]
    once = before[name] + w * (new - before[name])
    assert torch.allclose(after[name], once + w2 * (new - once))
    bn = next(k for k in after if k.endswith("running_var"))
    assert torch.allclose(after[bn], before[bn] + 3.0 * (1 - (1 - w) * (1 - w2)))
    assert int(after[bn.replace("running_var", "num_batches_tracked")]) == 5
    assert ema.updates == 2 and not any(p.requires_grad for p in ema.model.parameters())


def test_batch_must_split_over_workers():
    assert split_batch(128, 4) == 32
    with pytest.raises(UserError) as err:
        split_batch(30, 4)
    assert err.value.setting == "batch_size" and "multiple of 4" in str(err.value)
    with pytest.raises(UserError):
        split_batch(4, 4)  # one image per worker: BatchNorm needs two
    with pytest.raises(UserError) as err:
        scale_recipe(128, 0, 3)
    assert err.value.setting == "batch_size"


def test_resume_identity_names_the_first_difference():
    saved = {"spec": "abc", "epochs": 2, "seed": 0}
    check_identity(saved, dict(saved), "ck.pt")
    with pytest.raises(UserError) as err:
        check_identity(saved, {"spec": "abc", "epochs": 3, "seed": 1}, "ck.pt")
    assert err.value.field == "epochs" and err.value.source == "ck.pt" and "2" in str(err.value)
    with pytest.raises(UserError) as err:
        check_identity({**saved, "workers": 2}, saved, "ck.pt")
    assert err.value.field == "workers"


def test_init_weights_of_another_shape_name_the_tensor():
    model = build_model(TINY)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    check_fits(model, state, "w.pt", "adapted spec")
    wrong = dict(state, **{"head.classifier.weight": torch.zeros(10, state["head.classifier.weight"].shape[1])})
    with pytest.raises(UserError) as err:
        check_fits(model, wrong, "w.pt", "adapted spec")
    assert err.value.setting == "init" and "head.classifier.weight" in str(err.value) and "(1000," in str(err.value)
    with pytest.raises(UserError) as err:
        check_fits(model, {k: v for k, v in state.items() if k != "stem.0.weight"}, "w.pt", "adapted spec")
    assert "stem.0.weight" in str(err.value)
    with pytest.raises(UserError) as err:
        check_fits(model, {**state, "extra.weight": torch.zeros(1)}, "w.pt", "adapted spec")
    assert "extra.weight" in str(err.value)
