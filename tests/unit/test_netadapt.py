"""NetAdapt: weight surgery, admissible widths, the shrinking loop, its log and resume, the command line."""
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from helpers import REFERENCE, assert_user_error, run_cli
from nas.runtime.errors import UserError
from nas.export.onnx import randomize_for_check
from nas.latency.devices import get_device
from nas.core.model import build_model
from nas.netadapt.__main__ import main
from nas.netadapt.proposals import make_proposals
from nas.netadapt.run import run_netadapt
from nas.runtime.jsonl import read_log
from nas.accuracy.config import DataConfig, TrainConfig
from nas.accuracy.datasets import FASHION_MNIST_DIR
from nas.core.spec import has_residual, load_spec
from nas.netadapt.surgery import (candidate_widths, filter_norms, floor_widths, knobs_of, node_widths, residual_groups,
                         select_channels, shrink, structure)

needs_data = pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Fashion-MNIST is not installed")

TINY = """\
name: tiny
resolution: 224
num_classes: 1000
stem: {out: 16, k: 3, s: 2, act: hswish}
blocks:
  - {k: 3, exp: 16, out: 16, se: true, act: relu, s: 2}
  - {k: 3, exp: 48, out: 24, se: false, act: relu, s: 2}
  - {k: 3, exp: 72, out: 24, se: false, act: relu, s: 1}
  - {k: 5, exp: 96, out: 40, se: true, act: hswish, s: 2}
  - {k: 5, exp: 120, out: 40, se: true, act: hswish, s: 1}
head: {conv: 96, act: hswish, fc: 128, dropout: 0.2}
"""
# A few hundred 32x32 images and a handful of steps: enough to rank proposals, fast enough for CI.
TRAIN = TrainConfig(train_images=256, val_images=128, steps=30, batch_size=32, bn_images=64)
FAST = dict(train=TRAIN, steps=3, final_steps=0, delta=0.05, threads=1, progress=False)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread here (restored after): on a shared CPU, waiting OpenMP threads cost more than they give."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small(name: str, resolution: int = 64):
    return replace(load_spec(REFERENCE / f"{name}.yaml"), resolution=resolution, num_classes=10)


def random_narrowing(spec, rng: random.Random, moves: int = 12):
    """`spec` after random admissible knob moves (what NetAdapt may propose, in any order)."""
    knobs = knobs_of(spec)
    floors, _ = floor_widths(spec, knobs)
    for _ in range(moves):
        knob = rng.choice(knobs)
        options = [w for w in candidate_widths(knob.width(spec), floors[knob])
                   if structure(knob.apply(spec, w)) == structure(spec)]
        if options:
            spec = knob.apply(spec, rng.choice(options))
    return spec


def masked_source(model, selection):
    """A copy of `model` whose removed channels feed nothing: it must compute what the shrunk net computes."""
    m = build_model(model.spec)
    m.load_state_dict(model.state_dict())
    m.eval()

    def dropped(kept, n):
        mask = torch.ones(n, dtype=torch.bool)
        mask[kept] = False
        return mask

    with torch.no_grad():
        blocks = list(m.blocks)
        for i, b in enumerate(blocks):
            if b.expand is not None:  # without one, the input channels are the expanded ones (below)
                b.expand[0].weight[:, dropped(selection.nodes[i], b.expand[0].weight.shape[1])] = 0
            exp = dropped(selection.exp[i], b.depthwise[0].weight.shape[0])
            b.project[0].weight[:, exp] = 0
            if b.se is not None:
                b.se.reduce.weight[:, exp] = 0
                b.se.expand.weight[:, dropped(selection.se[i], b.se.reduce.weight.shape[0])] = 0
        last = dropped(selection.nodes[-1], m.head.conv[0].weight.shape[1])
        m.head.conv[0].weight[:, last] = 0
        conv = dropped(selection.head_conv, m.head.conv[0].weight.shape[0])
        if selection.head_fc is not None:
            m.head.fc[0].weight[:, conv] = 0
            m.head.classifier.weight[:, dropped(selection.head_fc, m.head.fc[0].weight.shape[0])] = 0
        else:
            m.head.classifier.weight[:, conv] = 0
    return m


# ---- weight surgery ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mobilenetv3_small", "mobilenetv3_large", "mnasnet_a1"])
def test_surgery_that_removes_nothing_is_the_identity(name):
    spec = small(name)
    torch.manual_seed(0)
    model = randomize_for_check(build_model(spec)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(shrink(model, spec)(x), model(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["mobilenetv3_small", "mnasnet_a1", "mobilenetv3_large"])
def test_shrunk_network_computes_from_the_kept_filters(name):
    spec = small(name)
    torch.manual_seed(1)
    model = randomize_for_check(build_model(spec)).eval()
    narrow = random_narrowing(spec, random.Random(1), moves=20)
    narrow = replace(narrow, head=replace(narrow.head, conv=narrow.head.conv // 2))  # the head shrinks too
    selection = select_channels(model, narrow)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got = shrink(model, narrow, selection).eval()(x)
        expected = masked_source(model, selection)(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4), float((got - expected).abs().max())


def test_kept_filters_are_the_largest_l2_ones():
    spec = small("mobilenetv3_large")
    torch.manual_seed(2)
    model = build_model(spec)
    narrow = random_narrowing(spec, random.Random(2), moves=20)
    selection = select_channels(model, narrow)
    blocks = list(model.blocks)
    for group in residual_groups(spec):
        score = sum(filter_norms(model.stem[0].weight if n == 0 else blocks[n - 1].project[0].weight) for n in group)
        kept = selection.nodes[group[0]]
        assert len(kept) == node_widths(narrow)[group[0]]
        removed = torch.ones(len(score), dtype=torch.bool)
        removed[kept] = False
        if removed.any():
            assert score[kept].min() >= score[removed].max()
    for i, b in enumerate(blocks):
        if b.expand is not None:
            norms = filter_norms(b.expand[0].weight)
            kept = selection.exp[i]
            assert len(kept) == narrow.blocks[i].exp
            rest = torch.ones(len(norms), dtype=torch.bool)
            rest[kept] = False
            if rest.any():
                assert norms[kept].min() >= norms[rest].max()


@pytest.mark.parametrize("name", ["mobilenetv3_small", "mobilenetv3_large", "mnasnet_a1", "mobilenetv2_035"])
def test_every_shrunk_network_builds_and_runs(name):
    spec = small(name, resolution=32)
    model = build_model(spec).eval()
    rng = random.Random(name)
    for trial in range(3):
        narrow = random_narrowing(spec, rng, moves=8 * (trial + 1))
        assert structure(narrow) == structure(spec)
        net = shrink(model, narrow)
        assert all((b.expand is None) == (bs.exp == cin) for b, bs, (cin, _) in
                   zip(net.blocks, narrow.blocks, narrow.block_inputs()))
        assert [b.use_residual for b in net.blocks] == [b.use_residual for b in model.blocks]
        with torch.no_grad():
            assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_residual_groups_shrink_together():
    spec = small("mobilenetv3_large")
    knobs = {k.label: k for k in knobs_of(spec)}
    group = knobs["bottleneck(blocks[3]..blocks[5])"]
    narrow = group.apply(spec, 24)
    assert [narrow.blocks[i].out for i in (3, 4, 5)] == [24, 24, 24]
    assert [has_residual(b, c) for b, (c, _) in zip(narrow.blocks, narrow.block_inputs())] == \
           [has_residual(b, c) for b, (c, _) in zip(spec.blocks, spec.block_inputs())]
    # The first group holds the stem and block 0 (exp == in: no expansion conv): its depthwise follows.
    first = knobs["bottleneck(stem..blocks[0])"].apply(spec, 8)
    assert (first.stem.out, first.blocks[0].exp, first.blocks[0].out) == (8, 8, 8)
    assert structure(first) == structure(spec)
    assert "blocks[0].exp" not in knobs  # no expansion layer to cut there


def test_widths_that_change_the_structure_are_never_proposed():
    spec = load_spec(REFERENCE / "mobilenetv3_small.yaml")
    knobs = knobs_of(spec)
    floors, floor_spec = floor_widths(spec, knobs)
    assert structure(floor_spec) == structure(spec)
    # blocks[6] maps 40 -> 48 at stride 1: a 40-wide 48-group would open a residual add.
    group = next(k for k in knobs if k.label == "bottleneck(blocks[6]..blocks[7])")
    assert floors[group] == 16 and structure(group.apply(spec, 40)) != structure(spec)
    device = get_device("pixel1")
    ms = device.predict(spec).ms
    proposals, _ = make_proposals(spec, knobs, floors, device, ms, 1e-6)
    assert {p.knob.label for p in proposals} == {k.label for k in knobs}
    assert all(structure(p.spec) == structure(spec) and p.latency_ms < ms for p in proposals)


# ---- the loop ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(TINY)
    return load_spec(path), path


@pytest.fixture(scope="module")
def full_run(tiny, tmp_path_factory):
    spec, _ = tiny
    target = 0.85 * get_device("pixel1").predict(spec).ms
    out = tmp_path_factory.mktemp("full")
    return target, out, run_netadapt(spec, target, "pixel1", data=DataConfig(), out_dir=out, **FAST)


def _iterations(out: Path):
    records, torn = read_log(out / "netadapt.jsonl")
    assert not torn
    return [r for r in records if r["type"] == "iteration"]


@needs_data
def test_latency_falls_at_every_iteration(full_run, tiny):
    target, out, result = full_run
    spec, _ = tiny
    lat = [h["latency_ms"] for h in result["history"]]
    assert len(lat) >= 3 and all(b < a for a, b in zip(lat, lat[1:]))
    assert result["reached"] and result["latency_ms"] <= target < lat[-2]
    assert result["iterations"] == len(lat) - 1
    final = load_spec(result["spec_path"])
    assert structure(final) == structure(spec) and final.content_hash() == result["arch_hash"]
    assert all(0 <= h["accuracy"] <= 1 for h in result["history"])
    # The saved weights fit the proxy-adapted final spec.
    build_model(load_spec(result["proxy_spec_path"])).load_state_dict(torch.load(result["weights_path"]))
    for record in _iterations(out)[1:]:
        chosen = record["chosen"]
        assert chosen in record["proposals"] and chosen["latency_ms"] == pytest.approx(record["latency_ms"])


@needs_data
def test_resume_continues_from_the_last_iteration(full_run, tiny, tmp_path):
    target, full_out, full = full_run
    spec, _ = tiny
    part = run_netadapt(spec, target, "pixel1", data=DataConfig(), out_dir=tmp_path, max_iterations=2, **FAST)
    assert not part["reached"] and part["iterations"] == 2
    with open(tmp_path / "netadapt.jsonl", "a") as f:
        f.write('{"type": "iteration", "iterat')  # a crash in the middle of a line
    with pytest.raises(UserError, match="--resume"):
        run_netadapt(spec, target, "pixel1", data=DataConfig(), out_dir=tmp_path, **FAST)
    resumed = run_netadapt(spec, target, "pixel1", data=DataConfig(), out_dir=tmp_path, resume=True, **FAST)
    a, b = _iterations(full_out), _iterations(tmp_path)
    assert [r["spec"] for r in a] == [r["spec"] for r in b]
    assert [r["accuracy"] for r in a] == [r["accuracy"] for r in b]
    assert resumed["arch_hash"] == full["arch_hash"] and resumed["accuracy"] == full["accuracy"]
    # A completed run resumes to its result; another run's settings are refused.
    again = run_netadapt(spec, target, "pixel1", data=DataConfig(), out_dir=tmp_path, resume=True, **FAST)
    assert again["arch_hash"] == full["arch_hash"]
    with pytest.raises(UserError, match="seed"):
        run_netadapt(spec, target, "pixel1", data=DataConfig(), out_dir=tmp_path, resume=True, seed=1, **FAST)


def test_read_log_tolerates_only_a_torn_last_line(tmp_path):
    log = tmp_path / "netadapt.jsonl"
    log.write_text('{"type": "start"}\n{"type": "iteration", "iteration": 0}\n{"type": "itera')
    records, torn = read_log(log)
    assert torn and [r["type"] for r in records] == ["start", "iteration"]
    log.write_text('{"type": "start"}\n{"type": "iter\n{"type": "iteration"}\n')
    with pytest.raises(UserError, match="line 2"):
        read_log(log)


def test_target_at_or_above_the_seed_returns_the_seed(tiny, tmp_path):
    spec, _ = tiny
    seed_ms = get_device("pixel1").predict(spec).ms
    result = run_netadapt(spec, seed_ms, "pixel1", out_dir=tmp_path, **FAST)
    assert result["unchanged"] and result["iterations"] == 0 and "unchanged" in result["message"]
    assert load_spec(result["spec_path"]).content_hash() == spec.content_hash()
    assert not (tmp_path / "netadapt.jsonl").exists()


def test_a_run_inside_a_locked_run_directory_takes_a_lock_of_its_own(tiny, tmp_path):
    """As in the pipeline: it holds run_dir's lock, NetAdapt runs in run_dir/netadapt under another."""
    from nas.runtime.lock import run_lock

    spec, _ = tiny
    seed_ms = get_device("pixel1").predict(spec).ms
    with run_lock(tmp_path, what="pipeline"):
        result = run_netadapt(spec, seed_ms, "pixel1", out_dir=tmp_path / "netadapt", **FAST)
    assert result["unchanged"] and (tmp_path / "netadapt" / ".lock").read_text() == ""  # taken and released
    with run_lock(tmp_path / "netadapt"), pytest.raises(RuntimeError, match="already locked by this process"):
        run_netadapt(spec, seed_ms, "pixel1", out_dir=tmp_path / "netadapt", **FAST)


def test_target_below_the_floor_is_exit_2_naming_it(tiny, tmp_path):
    spec, path = tiny
    _, floor_spec = floor_widths(spec, knobs_of(spec))
    floor = get_device("pixel1").predict(floor_spec).ms
    proc = run_cli("nas.netadapt", "--spec", str(path), "--target-ms", f"{0.9 * floor:.4f}", "--device", "pixel1",
                   "--out", str(tmp_path / "run"), "--json", timeout=60)
    assert_user_error(proc, "--target-ms", "floor", f"{floor:.3f}")
    assert not (tmp_path / "run" / "netadapt.jsonl").exists()


def test_bad_flags_are_one_line_errors(tiny, capsys):
    _, path = tiny
    for args, needle in ((["--target-ms", "0"], "--target-ms"), (["--target-ms", "2", "--delta", "1.5"], "--delta"),
                         (["--target-ms", "2", "--steps", "-1"], "--steps")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--spec", str(path), *args])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err
    assert_user_error(run_cli("nas.netadapt", "--spec", "/nonexistent.yaml", "--target-ms", "2"), "not found")


@needs_data
def test_cli_json(tiny, tmp_path):
    spec, path = tiny
    target = 0.95 * get_device("pixel1").predict(spec).ms
    proc = run_cli("nas.netadapt", "--spec", str(path), "--target-ms", f"{target:.4f}", "--device", "pixel1",
                   "--budget", "smoke", "--train-images", "128", "--val-images", "64", "--steps", "1",
                   "--final-steps", "2", "--threads", "1", "--out", str(tmp_path), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"latency_ms", "spec_path", "iterations", "accuracy", "reached", "weights_path"} <= set(result)
    assert result["latency_ms"] <= target and result["iterations"] >= 1 and result["reached"]
    assert Path(result["spec_path"]).is_file() and Path(result["weights_path"]).is_file()


# ---- parallel proposals -----------------------------------------------------------------------

@pytest.mark.slow
@needs_data
def test_ray_trials_match_the_in_process_path(tiny, tmp_path):
    spec, _ = tiny
    target = 0.93 * get_device("pixel1").predict(spec).ms
    runs = {}
    for parallel in ("none", "ray"):
        runs[parallel] = run_netadapt(spec, target, "pixel1", data=DataConfig(), out_dir=tmp_path / parallel,
                                      parallel=parallel, **FAST)
    assert runs["ray"]["arch_hash"] == runs["none"]["arch_hash"]
    a, b = _iterations(tmp_path / "none"), _iterations(tmp_path / "ray")
    assert [r["accuracy"] for r in a] == [r["accuracy"] for r in b]  # same seeds, one thread each: identical
