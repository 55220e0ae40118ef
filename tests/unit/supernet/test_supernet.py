"""The supernet: every path of the three spaces extracts as build_model's network with the same output;
training by path sampling learns and resumes exactly; a path's score re-estimates its BN."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from nas.accuracy.short_training import adapt_spec
from nas.core.model import build_model
from nas.core.space import load_space
from nas.runtime.errors import UserError
from nas.supernet.net import Supernet
from nas.supernet.path_training import SupernetTraining, evaluate_path
from helpers.supernet import CONFIG, TINY, patch_data

SPACES = ("mobilenetv3_large", "mobilenetv3_small", "mnasnet")


def supernet_for(space, transform=False, classes=10, resolution=32):
    stride = adapt_spec(space.seed_spec(), classes, resolution).stem.s
    return Supernet(space, classes, resolution, stride, kernel_transform=transform)


def busy(net: Supernet, seed: int = 0) -> Supernet:
    """Random weights everywhere (BN affine and statistics too), so that a wrong slice shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if t.dtype != torch.float32:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif ".transforms." in name:
                t.add_(torch.randn(t.shape, generator=g) * 0.1)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (0.2 if t.ndim > 1 else 0.5))
    return net.eval()


def paths(space, net, n, seed=0):
    rng = np.random.default_rng(seed)
    specs = [net.largest(), net.smallest(), net.adapt(space.seed_spec())]
    return specs + [net.adapt(space.sample_spec(rng)) for _ in range(n)]


@pytest.mark.parametrize("name", SPACES)
def test_every_sampled_path_extracts_with_build_models_shapes_and_output(name):
    space = load_space(name)
    net = busy(supernet_for(space))
    x = torch.randn(2, 3, 32, 32)
    for spec in paths(space, net, 6):
        sub = net.extract(spec).eval()
        want = {k: tuple(v.shape) for k, v in build_model(spec).state_dict().items()}
        assert {k: tuple(v.shape) for k, v in sub.state_dict().items()} == want
        with torch.no_grad():
            torch.testing.assert_close(net(x, spec), sub(x), rtol=1e-4, atol=1e-4)


def test_a_smaller_kernel_is_the_centre_of_the_largest_and_layers_keep_their_places():
    space = load_space("mobilenetv3_large")
    net = busy(supernet_for(space))
    dw = net.stages[1][0].depthwise
    assert torch.equal(dw.weight_for(24, 24, 3), dw.weight[:24, :, 1:4, 1:4])
    from nas.supernet.net import ElasticConv  # a kernel between the listed ones: the centre too
    wide = ElasticConv(4, 4, (7,), depthwise=True)
    assert torch.equal(wide.weight_for(4, 4, 3), wide.weight[:, :, 2:5, 2:5])
    largest = net.largest()
    expected = [(i, j) for i, stage in enumerate(net.bounds) for j in range(len(stage))]
    assert net.layout(largest) == expected  # every layer of every stage, in order
    smallest = net.smallest()
    assert net.layout(smallest) == [(i, j) for i, st in enumerate(space.stages)
                                    for j in range(st.layers + min(st.choices["layers"]))]


def test_kernel_transform_paths_extract_exactly_and_differ_from_a_plain_crop():
    space = load_space("mobilenetv3_large")
    plain, transformed = busy(supernet_for(space)), busy(supernet_for(space, transform=True))
    spec = plain.smallest()  # every kernel 3: cut from the 5x5 through the learned transform
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(transformed(x, spec), transformed.extract(spec).eval()(x), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(transformed(x, spec), plain(x, spec), atol=1e-3)


def test_a_shrunk_spec_outside_the_space_still_extracts():
    """NetAdapt's widths are not the space's: any spec whose tensors fit is a path."""
    space = load_space("mobilenetv3_small")
    net = busy(supernet_for(space))
    seed = net.adapt(space.seed_spec())
    blocks = tuple(replace(b, exp=max(8, b.exp - 8)) if i % 2 else b for i, b in enumerate(seed.blocks))
    spec = replace(seed, blocks=blocks, name="shrunk")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x, spec), net.extract(spec).eval()(x), rtol=1e-4, atol=1e-4)


def test_specs_that_do_not_fit_are_refused_naming_the_field():
    space = load_space("mobilenetv3_small")
    net = supernet_for(space)
    seed = net.adapt(space.seed_spec())
    with pytest.raises(UserError, match="blocks"):
        net.layout(replace(seed, blocks=tuple(replace(b, k=7) for b in seed.blocks)))
    with pytest.raises(UserError, match="blocks"):
        net.layout(replace(seed, blocks=seed.blocks[:-4]))
    with pytest.raises(UserError, match="num_classes"):
        net.layout(replace(seed, num_classes=1000))
    with pytest.raises(UserError, match="stem.s"):
        net.layout(replace(seed, stem=replace(seed.stem, s=3)))


def test_sorting_channels_keeps_the_largest_network_and_orders_importance():
    space = load_space("mobilenetv3_large")
    net = busy(supernet_for(space))
    x = torch.randn(2, 3, 32, 32)
    largest = net.largest()
    with torch.no_grad():
        before = net(x, largest)
        net.sort_channels()
        torch.testing.assert_close(net(x, largest), before, rtol=1e-4, atol=1e-4)
    layer = net.stages[2][0]
    importance = layer.project.weight.abs().sum(dim=(0, 2, 3))
    assert bool((importance[:-1] >= importance[1:]).all())


# ---- training ---------------------------------------------------------------------------------

def test_path_sampled_training_learns_the_task_for_big_and_small_paths():
    space = load_space(TINY)
    training = SupernetTraining(space, patch_data(), replace(CONFIG, epochs=5))
    before = [training.evaluate(s) for s in (training.net.largest(), training.net.smallest())]
    training.run()
    after = [training.evaluate(s) for s in (training.net.largest(), training.net.smallest())]
    assert training.failure is None and training.epoch == 5
    assert min(after) > 0.5 and min(after) > max(before) + 0.2


def test_training_resumes_exactly_from_an_epoch_checkpoint(tmp_path):
    space, data = load_space(TINY), patch_data()
    straight = SupernetTraining(space, data, CONFIG, seed=3)
    straight.run()
    first = SupernetTraining(space, data, CONFIG, seed=3)
    first.run(until=1)
    torch.save(first.state_dict(), tmp_path / "supernet.pt")
    resumed = SupernetTraining(space, data, CONFIG, seed=3)
    resumed.load_state_dict(torch.load(tmp_path / "supernet.pt", weights_only=True))
    resumed.run()
    for (name, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.step == straight.step and len(resumed.history) == 2


def test_a_paths_score_recalibrates_its_batchnorm_and_is_repeatable():
    space, data = load_space(TINY), patch_data()
    training = SupernetTraining(space, data, CONFIG)
    training.run()
    net, small, large = training.net, training.net.smallest(), training.net.largest()
    head_stats = lambda: net.head_bn.running_mean.clone()  # noqa: E731
    score = training.evaluate(small)
    small_stats = head_stats()
    training.evaluate(large)  # overwrites the shared statistics with the largest path's
    assert not torch.allclose(head_stats(), small_stats)
    assert training.evaluate(small) == score
    torch.testing.assert_close(head_stats(), small_stats)
    assert evaluate_path(net, small, data, CONFIG) == score and 0.0 <= score <= 1.0


def test_the_sandwich_rule_trains_the_largest_and_the_smallest_at_every_step():
    space, data = load_space(TINY), patch_data()
    training = SupernetTraining(space, data, replace(CONFIG, paths=4))
    drawn = training.paths(np.random.default_rng(0))
    assert len(drawn) == 4
    assert drawn[0].blocks == training.net.largest().blocks and drawn[1].blocks == training.net.smallest().blocks


def test_an_extracted_network_carries_its_own_paths_batchnorm():
    from nas.supernet.path_training import extract_calibrated, recalibrate_path_bn

    space, data = load_space(TINY), patch_data()
    training = SupernetTraining(space, data, CONFIG)
    training.run(until=1)
    net, small = training.net, training.net.smallest()
    recalibrate_path_bn(net, net.largest(), data.batches("train", 64, limit=64))  # the shared buffers: another path's
    stale = net.extract(small).head.conv[1].running_mean.clone()
    fresh = extract_calibrated(net, small, data, CONFIG).head.conv[1].running_mean
    recalibrate_path_bn(net, small, data.batches("train", CONFIG.eval_batch_size, limit=CONFIG.bn_images))
    torch.testing.assert_close(fresh, net.head_bn.running_mean[:fresh.numel()])
    assert not torch.allclose(fresh, stale)


def test_a_policy_replaces_the_random_draws():
    space, data = load_space(TINY), patch_data()
    fixed = space.seed_tokens()
    training = SupernetTraining(space, data, replace(CONFIG, sampler="uniform"), policy=lambda rng: fixed)
    drawn = training.paths(np.random.default_rng(0))
    assert [s.blocks for s in drawn] == [training.net.adapt(space.decode(fixed)).blocks] * CONFIG.paths
