"""Short proxy training: spec adaptation, learning, determinism, resumption, divergence, the proxy API."""
import io
import math
from dataclasses import replace

import pytest
import torch

from nas.runtime.errors import UserError
from nas.accuracy import DataConfig, ProxyConfig, TrainConfig, Trainer, adapt_spec, load_data, make_proxy, train_spec
from nas.budgets import get_budget
from nas.accuracy.training_core import warmup_cosine
from nas.core.spec_file import load_spec
from helpers import REFERENCE
from helpers.data import TINY, one_torch_thread, write_idx_dataset  # noqa: F401 (autouse fixture)

RECIPE = TrainConfig(train_images=256, val_images=100, epochs=2, batch_size=32, lr=0.125, bn_images=64)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = write_idx_dataset(tmp_path_factory.mktemp("idx") / "fmnist")
    return load_data(DataConfig(path=str(directory)), RECIPE.train_images, RECIPE.val_images)


def test_adapt_spec_sets_classes_resolution_and_stem_stride():
    large = load_spec(REFERENCE / "mobilenetv3_large.yaml")
    at32 = adapt_spec(large, 10, 32)
    assert (at32.num_classes, at32.resolution, at32.stem.s) == (10, 32, 1)
    assert at32.head_input()[1] == 2  # not collapsed to 1x1
    assert at32.blocks == large.blocks and at32.head == large.head
    assert adapt_spec(large, 10, 224).stem.s == 2  # 7x7 at the end: nothing to fix
    assert adapt_spec(large, 10, 32, "keep").stem.s == 2
    assert adapt_spec(large, 10, 224, 1).stem.s == 1


def test_training_lowers_the_loss_and_learns(data):
    trainer = Trainer(TINY, data, replace(RECIPE, epochs=8), seed=0)
    x, y = data.train_batch(torch.arange(64))
    with torch.no_grad():
        before = float(trainer.criterion(trainer.model.eval()(x), y))
    result = trainer.run()
    with torch.no_grad():
        after = float(trainer.criterion(trainer.model.eval()(x), y))
    assert after < before
    assert not result.failed and result.steps == 8 * (256 // 32) and result.epochs == 8
    assert result.accuracy > 0.3  # chance is 0.1; the synthetic classes are easy
    assert result.params > 0 and result.macs > 0 and result.val_images == 100


def test_same_seed_same_result_other_seed_other_weights(data):
    a, b = Trainer(TINY, data, RECIPE, seed=3), Trainer(TINY, data, RECIPE, seed=3)
    ra, rb = a.run(), b.run()
    assert ra.accuracy == rb.accuracy and ra.loss == rb.loss
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    c = Trainer(TINY, data, RECIPE, seed=4)
    c.run()
    assert not torch.equal(c.model.stem[0].weight, a.model.stem[0].weight)


def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(data):
    straight = Trainer(TINY, data, RECIPE, seed=1)
    expected = straight.run()
    first = Trainer(TINY, data, RECIPE, seed=1)
    first.train_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = Trainer(TINY, data, RECIPE, seed=1)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    result = resumed.run()
    assert result.steps == expected.steps and result.accuracy == expected.accuracy
    assert torch.equal(resumed.model.stem[0].weight, straight.model.stem[0].weight)


def test_non_finite_loss_is_a_failing_score_not_a_crash(data):
    trainer = Trainer(TINY, data, RECIPE)
    with torch.no_grad():
        trainer.model.head.classifier.weight.fill_(float("nan"))
    records = []
    result = trainer.run(on_epoch=lambda t, r: records.append(r))
    assert result.failed and result.accuracy == 0.0 and "non-finite loss" in result.reason
    assert records and records[-1]["failed"] and records[-1]["accuracy"] == 0.0


def test_steps_rmsprop_and_per_epoch_records(data):
    records = []
    result = Trainer(TINY, data, replace(RECIPE, steps=10, optimizer="rmsprop")).run(
        on_epoch=lambda t, r: records.append(r))
    assert result.steps == 10 and result.epochs == 2 and not result.failed
    assert [r["epoch"] for r in records] == [1, 2] and all(0 <= r["accuracy"] <= 1 for r in records)


def test_warmup_cosine_schedule():
    f = warmup_cosine(100, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)
    assert all(f(s) >= f(s + 1) for s in range(10, 100))


def test_train_config_validation():
    with pytest.raises(UserError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(UserError, match="lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(UserError, match="optimizer"):
        TrainConfig(optimizer="adam")
    assert TrainConfig(batch_size=128).learning_rate == pytest.approx(0.1)
    config = ProxyConfig(train=TrainConfig(epochs=3), seed=7)
    assert ProxyConfig.from_dict(config.to_dict()) == config  # what a Ray trial receives
    assert config.fingerprint() != ProxyConfig(seed=7).fingerprint()
    with pytest.raises(UserError, match="unknown keys"):
        ProxyConfig.from_dict({"train": {"epochz": 3}})
    assert TrainConfig(batch_size=128, lr=0.3).learning_rate == 0.3


def test_make_proxy_names_and_results(data, tmp_path):
    directory = write_idx_dataset(tmp_path / "d")
    config = DataConfig(path=str(directory))
    budget = replace(get_budget("smoke").accuracy, proxy=replace(RECIPE, epochs=1))
    trained = make_proxy("train", budget, config, threads=1).evaluate(TINY)
    assert {"accuracy", "score", "seconds", "failed", "arch_hash", "proxy"} <= set(trained)
    assert trained["score"] == trained["accuracy"] and 0 <= trained["accuracy"] <= 1 and not trained["failed"]
    assert make_proxy("train-3ep", budget, config).config.train.epochs == 3
    assert make_proxy("train-40steps", budget, config).config.train.steps == 40
    assert make_proxy("reference", budget, config).config.train == budget.reference
    scored = make_proxy("naswot", budget, config, threads=1).evaluate(TINY)
    assert scored["accuracy"] is None and math.isfinite(scored["score"]) and make_proxy("naswot").cheap
    with pytest.raises(UserError, match="unknown proxy"):
        make_proxy("train-0ep")
    with pytest.raises(UserError, match="unknown proxy"):
        make_proxy("oracle")


def test_train_spec_on_a_reference_network(data):
    small = load_spec(REFERENCE / "mobilenetv3_small.yaml")
    result = train_spec(small, data, replace(RECIPE, steps=2))
    assert result.steps == 2 and 0 <= result.accuracy <= 1 and not result.failed
