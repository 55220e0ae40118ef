"""NetAdapt: weight surgery, admissible widths, the shrinking loop, its log and resume, the command line
(in-process; in a real process: tests/integration/netadapt/test_netadapt_cli.py)."""
import logging
import math
import random
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import REFERENCE, check_user_error, run_inprocess
from helpers.netadapt import FAST, TRAIN, data, iterations, tiny  # noqa: F401 (data, tiny: fixtures)
from nas.runtime.errors import UserError
from nas.export.onnx import randomize_for_check
from nas.latency.devices import get_device
from nas.core.model import build_model
from nas.runtime.stats import standard_error
from nas.netadapt.proposals import TIE_SE, choose, make_proposals, may_win, proposal_score
from nas.netadapt.netadapt_run import run_netadapt, tie_note
from nas.runtime.jsonl import read_log
from nas.core.spec import has_residual
from nas.core.spec_file import load_spec
from nas.netadapt.surgery import (candidate_widths, filter_norms, floor_widths, knobs_of, node_widths, residual_groups,
                         select_channels, shrink, structure)


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
def full_run(tiny, data, tmp_path_factory):
    spec, _ = tiny
    target = 0.85 * get_device("pixel1").predict(spec).ms
    out = tmp_path_factory.mktemp("full")
    return target, out, run_netadapt(spec, target, "pixel1", data=data, out_dir=out, **FAST)


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
    records = iterations(out)
    assert records[0]["noise"]["n_val"] == TRAIN.val_images
    for record in records[1:]:
        chosen = record["chosen"]
        assert chosen in record["proposals"] and chosen["latency_ms"] == pytest.approx(record["latency_ms"])
        # The noise of the measurement: the binomial SE at the best proposal's top-1 on the 128 images.
        noise, best = record["noise"], max(p["accuracy"] for p in record["proposals"])
        assert noise["n_val"] == TRAIN.val_images and noise["accuracy"] == best
        assert noise["se"] == pytest.approx(math.sqrt(best * (1 - best) / TRAIN.val_images), rel=1e-12)
        assert [p["knob"] for p in record["proposals"] if p["tied"]] == noise["tied"]


@pytest.fixture(scope="module")
def resumed(full_run, tiny, data, tmp_path_factory):
    """A run stopped after two iterations, its log ending in a torn line (a crash in the middle of a
    line), then resumed to its end: the stopped run's result, the folder, the resumed run's result."""
    target, _, _ = full_run
    spec, _ = tiny
    out = tmp_path_factory.mktemp("resumed")
    part = run_netadapt(spec, target, "pixel1", data=data, out_dir=out, max_iterations=2, **FAST)
    with open(out / "netadapt.jsonl", "a") as f:
        f.write('{"type": "iteration", "iterat')
    return part, out, run_netadapt(spec, target, "pixel1", data=data, out_dir=out, resume=True, **FAST)


def test_a_run_stopped_by_max_iterations_has_not_reached_the_target(resumed):
    part, _, _ = resumed
    assert not part["reached"] and part["iterations"] == 2


def test_resume_continues_from_the_last_iteration(full_run, resumed):
    _, full_out, full = full_run
    _, out, done = resumed
    a, b = iterations(full_out), iterations(out)
    assert [r["spec"] for r in a] == [r["spec"] for r in b]
    assert [r["accuracy"] for r in a] == [r["accuracy"] for r in b]
    assert done["arch_hash"] == full["arch_hash"] and done["accuracy"] == full["accuracy"]


def test_a_completed_run_resumes_to_its_result(full_run, resumed, tiny, data):
    target, _, full = full_run
    _, out, _ = resumed
    again = run_netadapt(tiny[0], target, "pixel1", data=data, out_dir=out, resume=True, **FAST)
    assert again["arch_hash"] == full["arch_hash"]


def test_a_resume_with_another_runs_settings_is_refused(full_run, resumed, tiny, data):
    target, _, _ = full_run
    _, out, _ = resumed
    with pytest.raises(UserError, match="seed"):
        run_netadapt(tiny[0], target, "pixel1", data=data, out_dir=out, resume=True, seed=1, **FAST)


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


def test_target_below_the_floor_is_exit_2_naming_it(tiny, tmp_path, capsys):
    spec, path = tiny
    _, floor_spec = floor_widths(spec, knobs_of(spec))
    floor = get_device("pixel1").predict(floor_spec).ms
    code, _, err = run_inprocess(["nas.netadapt", "--spec", str(path), "--target-ms", f"{0.9 * floor:.4f}",
                                  "--device", "pixel1", "--out", str(tmp_path / "run"), "--json"], capsys)
    check_user_error(code, err, "--target-ms", "floor", f"{floor:.3f}")
    assert not (tmp_path / "run").exists()  # a bad input leaves no directory behind


@pytest.mark.parametrize("args,needle", [
    (["--target-ms", "0"], "--target-ms"), (["--target-ms", "2", "--delta", "1.5"], "--delta"),
    (["--target-ms", "2", "--steps", "-1"], "--steps"), (["--target-ms", "2", "--select", "best"], "--select"),
])
def test_bad_flags_are_one_line_errors(tiny, capsys, args, needle):
    _, path = tiny
    code, _, err = run_inprocess(["nas.netadapt", "--spec", str(path), *args], capsys)
    check_user_error(code, err, needle)


def test_missing_spec_and_nothing_to_resume_are_one_line_errors(tmp_path, capsys):
    code, _, err = run_inprocess(["nas.netadapt", "--spec", "/nonexistent.yaml", "--target-ms", "2"], capsys)
    check_user_error(code, err, "not found")
    code, _, err = run_inprocess(["nas.netadapt", "--spec", "mobilenetv3_small", "--target-ms", "2", "--resume",
                                  "--out", str(tmp_path)], capsys)
    check_user_error(code, err, "--resume", "nothing to resume")


def test_seed_weights_holding_nan_are_one_line_naming_the_tensor_before_any_training(tiny, fashion_mnist, tmp_path,
                                                                                   capsys):
    _, path = tiny
    torch.save({"stem.0.weight": torch.tensor([1.0, float("nan")])}, tmp_path / "nan.pt")
    out = tmp_path / "run"
    code, _, err = run_inprocess(["nas.netadapt", "--spec", str(path), "--target-ms", "4", "--weights",
                                  str(tmp_path / "nan.pt"), "--data", str(fashion_mnist), "--out", str(out)], capsys)
    check_user_error(code, err, "nan.pt", "--weights", "stem.0.weight", "non-finite")
    assert not list(out.glob("*.pt"))  # nothing trained


# ---- the decision rules, on scripted runs ------------------------------------------------------
# No data and no training: the proxy task is replaced by one that scores each proposal from a
# script, and the device by one whose latency is exact in binary (channels / 64 ms), so which
# proposal wins, how much each iteration must cut and where the run stops are fully determined.

class LinearDevice:
    """Latency = (stem + every block's exp and out + head conv channels) / 64 ms: 9.5 ms for `tiny`."""

    name = "linear"

    @staticmethod
    def ms(spec) -> float:
        return (spec.stem.out + sum(b.exp + b.out for b in spec.blocks) + spec.head.conv) / 64

    def predict_many(self, specs):
        return np.array([[self.ms(s)] * 3 for s in specs])


class PlateauDevice(LinearDevice):
    """Latency in steps of 0.25 ms (per 16 channels): a width cut of 8 may change nothing."""

    name = "plateau"

    @staticmethod
    def ms(spec) -> float:
        return (int(LinearDevice.ms(spec) * 64) // 16) / 4


class ScriptedTask:
    """ProxyTask without data: the seed scores 0.5; `finetune_in_process` below scores the proposals."""

    SEED_ACCURACY = 0.5
    val_images = 100  # the standard error of a top-1 p is sqrt(p (1 - p) / 100)

    def __init__(self, config, threads=None):
        self.config = config

    def adapt(self, spec):
        return spec

    def run(self, spec, state, train, seed):
        return {"accuracy": self.SEED_ACCURACY, "failed": False, "reason": None, "steps": 0, "seconds": 0.0,
                "state": {"w": torch.zeros(1)}}


@pytest.fixture
def scripted(monkeypatch):
    """`scripted.score = fn(proposal) -> accuracy | (accuracy, failed)`; `scripted.rounds`: the proposals
    of each iteration."""
    import nas.netadapt.netadapt_run as run_module

    script = SimpleNamespace(score=lambda p: 0.5, rounds=[])

    def finetune(task, spec, state, proposals, seed, progress):
        script.rounds.append(list(proposals))
        for p in proposals:
            got = script.score(p)
            accuracy, failed = got if isinstance(got, tuple) else (got, False)
            # The weights name their iteration and proposal, so a test can see whose were kept.
            yield {"accuracy": accuracy, "failed": failed, "reason": "loss is nan" if failed else None, "steps": 1,
                   "seconds": 0.0, "state": {"w": torch.tensor([float(len(script.rounds)), float(proposals.index(p))])}}

    monkeypatch.setattr(run_module, "ProxyTask", ScriptedTask)
    monkeypatch.setattr(run_module, "finetune_in_process", finetune)
    return script


def prefer(*labels, others=0.1):
    """Accuracy 0.9 for the first of `labels` proposed (then 0.8, ...), `others` for the rest."""
    return lambda p: 0.9 - 0.1 * labels.index(p.knob.label) if p.knob.label in labels else others


def scripted_run(spec, target, out, device=None, **kw):
    options = dict(steps=1, final_steps=0, delta=1 / 16, select="accuracy", progress=False) | kw
    return run_netadapt(spec, target, device or LinearDevice(), out_dir=out, **options)


def test_required_cut_is_delta_of_the_seed_then_what_the_target_still_needs(tiny, scripted, tmp_path):
    spec, _ = tiny
    scripted.score = prefer("blocks[4].exp")
    result = scripted_run(spec, 8.0, tmp_path)
    records = iterations(tmp_path)
    # delta = 1/16 of the seed's 9.5 ms = 0.59375 ms, then the last step asks only 8.125 - 8 = 0.125 ms.
    assert [r.get("required_ms") for r in records] == [None, 0.59375, 0.59375, 0.125]
    # The widest width cutting that much: 120 -> 80 (40 channels, 0.625 ms); from 80, 40 would equal
    # the block's input (no expansion conv: another structure), so 32 (0.75 ms); then 24.
    assert [(r["chosen"]["from"], r["chosen"]["to"]) for r in records[1:]] == [(120, 80), (80, 32), (32, 24)]
    assert [r["latency_ms"] for r in records] == [9.5, 8.875, 8.125, 8.0]
    assert result["reached"] and result["latency_ms"] == 8.0 and result["iterations"] == 3  # <=: stops at 8.0
    assert not any(r["fallback"] for r in records[1:])


@pytest.mark.parametrize("select,winner", [("ratio", "bottleneck(blocks[3]..blocks[4])"),
                                           ("accuracy", "blocks[1].exp")])
def test_choice_is_the_best_score_of_the_proposals_that_cut_enough(tiny, scripted, tmp_path, select, winner):
    spec, _ = tiny
    accuracy = {"blocks[1].exp": 0.45, "bottleneck(blocks[3]..blocks[4])": 0.44}
    scripted.score = lambda p: accuracy.get(p.knob.label, 0.3)
    result = scripted_run(spec, 9.2, tmp_path, select=select)  # one iteration, required 9.5 - 9.2 = 0.3 ms
    (record,) = iterations(tmp_path)[1:]
    assert record["required_ms"] == pytest.approx(0.3, abs=1e-12)
    cuts = {p["knob"]: 9.5 - p["latency_ms"] for p in record["proposals"]}
    # Every expansion cuts 3 x 8 channels (0.375 ms); a two-node group 2 x 16 (0.5 ms); the stem's and
    # blocks[0]'s groups cannot cut 0.3 ms at all (8 is their floor), so they are not proposed.
    assert cuts == pytest.approx({"blocks[1].exp": 0.375, "blocks[2].exp": 0.375, "blocks[3].exp": 0.375,
                                  "blocks[4].exp": 0.375, "bottleneck(blocks[1]..blocks[2])": 0.5,
                                  "bottleneck(blocks[3]..blocks[4])": 0.5})
    scores = {p["knob"]: p["score"] for p in record["proposals"]}
    if select == "ratio":  # dAcc / |dLat|: -0.06 / 0.5 beats -0.05 / 0.375
        assert scores["blocks[1].exp"] == pytest.approx(-0.05 / 0.375)
        assert scores["bottleneck(blocks[3]..blocks[4])"] == pytest.approx(-0.06 / 0.5)
    else:  # the original NetAdapt rule: the highest accuracy
        assert scores == {k: accuracy.get(k, 0.3) for k in cuts}
    assert record["chosen"]["knob"] == winner and result["history"][-1]["chosen"] == winner
    assert result["latency_ms"] == pytest.approx(9.5 - cuts[winner])


def test_ties_go_to_the_first_proposal_and_diverged_ones_never_win(tiny, scripted, tmp_path):
    spec, _ = tiny
    scripted_run(spec, 9.2, tmp_path / "tie")  # every proposal scores 0.5
    assert iterations(tmp_path / "tie")[1]["chosen"]["knob"] == "blocks[1].exp"  # knob order: the first
    # The best accuracy, but its fine-tune diverged; a NaN accuracy; the rest tie at 0.3.
    scripted.score = lambda p: {"blocks[1].exp": (0.99, True), "blocks[2].exp": math.nan}.get(p.knob.label, 0.3)
    scripted_run(spec, 9.2, tmp_path / "nan")
    record = iterations(tmp_path / "nan")[1]
    assert record["chosen"]["knob"] == "blocks[3].exp"
    rows = {p["knob"]: p for p in record["proposals"]}
    assert rows["blocks[1].exp"]["failed"] and rows["blocks[1].exp"]["score"] is None  # -inf, logged as null
    assert rows["blocks[2].exp"]["score"] is None


def test_fallback_proposes_every_largest_cut_when_no_knob_cuts_enough(tiny, scripted, tmp_path):
    spec, _ = tiny
    floors, _ = floor_widths(spec, knobs_of(spec))
    scripted.score = lambda p: 1 - p.latency_ms / 100  # the largest cut wins
    result = scripted_run(spec, 4.75, tmp_path, delta=0.5)  # 4.75 ms per step: no single knob cuts that much
    records = iterations(tmp_path)
    assert [r["fallback"] for r in records[1:]] == [True, True, True, False]
    assert [r["required_ms"] for r in records[1:]] == [4.75, 3.125, 1.875, 0.875]
    # A fallback proposes every knob at its narrowest admissible width (its largest cut), then keeps the
    # best. That is the floor, except blocks[1].exp: 16 would equal its 16-wide input while the
    # blocks[0] group is still 16 (no expansion conv: another structure), so 24.
    narrowest = {k.label: w for k, w in floors.items()} | {"blocks[1].exp": 24}
    assert {p["knob"]: p["to"] for p in records[1]["proposals"]} == narrowest
    assert [r["chosen"]["knob"] for r in records[1:]] == [
        "blocks[4].exp", "blocks[3].exp", "bottleneck(blocks[3]..blocks[4])", "blocks[2].exp"]
    assert [r["latency_ms"] for r in records] == [9.5, 7.875, 6.625, 5.625, 4.75]
    # Knobs already at their floor are no longer proposed.
    assert "blocks[4].exp" not in {p["knob"] for p in records[2]["proposals"]}
    assert result["reached"] and result["latency_ms"] == 4.75


def test_every_proposal_cuts_latency_even_a_hair_above_the_target(tiny, scripted, tmp_path):
    """The tolerance on "cuts enough" must not admit a width that cuts nothing: 5e-13 ms above the target
    every width qualifies as cutting >= 5e-13 - 1e-12, and a plateau device has widths that cut 0."""
    spec, _ = tiny
    scripted.score = prefer("blocks[4].exp")
    result = scripted_run(spec, 8.75 - 5e-13, tmp_path, device=PlateauDevice())
    records = iterations(tmp_path)
    for before, record in zip(records, records[1:]):
        assert all(p["latency_ms"] < before["latency_ms"] for p in record["proposals"]), record["iteration"]
    assert [r["latency_ms"] for r in records] == [9.5, 8.75, 8.5]
    assert result["reached"] and result["latency_ms"] <= 8.75 - 5e-13


def test_every_proposal_diverged_is_one_error_and_nothing_of_that_iteration_is_written(tiny, scripted, tmp_path):
    spec, _ = tiny
    scripted.score = lambda p: (math.nan, True) if len(scripted.rounds) == 2 else prefer("blocks[4].exp")(p)
    with pytest.raises(UserError, match=r"every proposal of iteration 2 diverged in fine-tuning \(loss is nan\)"):
        scripted_run(spec, 8.0, tmp_path)
    assert [r["iteration"] for r in iterations(tmp_path)] == [0, 1]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "iter000.pt", "iter000.yaml", "iter001.pt", "iter001.yaml"]
    assert not (tmp_path / "final.yaml").exists() and not (tmp_path / "final.pt").exists()
    # The lock is released and the log whole: --resume goes on to the uninterrupted run's result.
    scripted.score = prefer("blocks[4].exp")
    resumed = scripted_run(spec, 8.0, tmp_path, resume=True)
    straight = scripted_run(spec, 8.0, tmp_path / "straight")
    assert resumed["arch_hash"] == straight["arch_hash"] and resumed["latency_ms"] == 8.0
    assert [r["iteration"] for r in iterations(tmp_path)] == [0, 1, 2, 3]
    # NaN accuracies from fine-tunes that did not report a failure: the same error, with a reason.
    scripted.score = lambda p: math.nan
    with pytest.raises(UserError, match=r"iteration 1 diverged in fine-tuning \(non-finite accuracy\)"):
        scripted_run(spec, 8.0, tmp_path / "nan")


def test_no_width_that_lowers_the_latency_is_one_error(tiny, scripted, tmp_path):
    class Flat(LinearDevice):  # only the floor itself is faster: no single width change helps
        def __init__(self, floor_spec):
            self.floor = floor_spec.content_hash()

        def ms(self, spec):
            return 3.0 if spec.content_hash() == self.floor else 9.5

        def predict_many(self, specs):
            return np.array([[self.ms(s)] * 3 for s in specs])

    spec, _ = tiny
    _, floor_spec = floor_widths(spec, knobs_of(spec))
    with pytest.raises(UserError, match="no width can shrink further at 9.500 ms") as err:
        scripted_run(spec, 5.0, tmp_path, device=Flat(floor_spec))
    assert err.value.setting == "target_ms"
    assert [r["iteration"] for r in iterations(tmp_path)] == [0]


@pytest.mark.parametrize("device", ["pixel1", "linear"])
def test_a_finished_run_never_lands_over_the_target(tiny, scripted, tmp_path, device):
    """The stop rule on many targets, with accuracies that pick proposals at random: the final
    prediction is <= the target and the one before it was above (NetAdapt stops at once)."""
    spec, _ = tiny
    dev = get_device("pixel1") if device == "pixel1" else LinearDevice()
    seed_ms = float(dev.predict_many([spec])[0][0])
    _, floor_spec = floor_widths(spec, knobs_of(spec))
    floor_ms = float(dev.predict_many([floor_spec])[0][0])
    rng = random.Random(device)
    scripted.score = lambda p: rng.random()
    for i, fraction in enumerate((0.0, 0.13, 0.31, 0.5, 0.77, 0.96, 1.0)):
        target = floor_ms + fraction * (seed_ms - floor_ms) * (1 - 1e-9)
        result = scripted_run(spec, target, tmp_path / str(i), device=dev, delta=0.1, select="ratio")
        records = iterations(tmp_path / str(i))
        lat = [r["latency_ms"] for r in records]
        assert result["reached"] and result["latency_ms"] == lat[-1] <= target < lat[-2], (target, lat)
        assert float(dev.predict_many([result["spec"]])[0][0]) == result["latency_ms"]
        assert all(b < a for a, b in zip(lat, lat[1:]))
        for before, r in zip(lat, records[1:]):
            assert r["required_ms"] == pytest.approx(min(0.1 * seed_ms, before - target), rel=1e-12)
            assert r["fallback"] or before - r["latency_ms"] >= r["required_ms"] - 1e-12


# ---- the noise of a measurement and ties ------------------------------------------------------
# ScriptedTask measures on 100 images: a top-1 p has standard error sqrt(p (1 - p) / 100).

def test_standard_error_is_the_binomial_one_of_the_measurement():
    assert standard_error(0.8, 400) == pytest.approx(0.02, rel=1e-12)
    assert standard_error(0.5, 100) == pytest.approx(0.05, rel=1e-12)
    assert standard_error(1.0, 100) == 0.0
    assert math.isnan(standard_error(0.5, 0)) and math.isnan(standard_error(math.nan, 100))


def _constructed(accuracies_and_ms):
    """Proposals named p0, p1, ... with those latencies, and outcomes with those accuracies (None: diverged)."""
    proposals = [SimpleNamespace(knob=SimpleNamespace(label=f"p{i}"), latency_ms=ms)
                 for i, (_, ms) in enumerate(accuracies_and_ms)]
    outcomes = [{"accuracy": math.nan if a is None else a, "failed": a is None} for a, _ in accuracies_and_ms]
    return proposals, outcomes


@pytest.mark.parametrize("rule", ["noise-aware", "accuracy", "ratio", "latency"])
def test_within_noise_the_latency_saving_proposal_wins_and_a_clear_winner_still_wins(rule):
    # Luckiest 0.80 on 100 images: SE 0.04. 0.76 is at 1 SE (tied), 0.75 beyond it, although it cuts most.
    proposals, outcomes = _constructed([(0.78, 9.2), (0.80, 9.0), (0.76, 8.8), (0.75, 8.0), (None, 7.0)])
    for p, o in zip(proposals, outcomes):
        o["score"] = proposal_score(p, o, 0.81, 10.0, rule)
    best, noise = choose(proposals, outcomes, rule, 100)
    assert noise["n_val"] == 100 and noise["accuracy"] == 0.80 and noise["se"] == pytest.approx(0.04)
    assert noise["tied"] == ["p0", "p1", "p2"] and noise["tie_se"] == TIE_SE == 1
    expected = {"noise-aware": 2,  # the tied one that cuts most
                "accuracy": 1,  # the luckiest
                "ratio": 1,  # -0.01 / 1.0 ms is the least loss per ms
                "latency": 3}  # the largest cut among the ones that did not diverge
    assert best == expected[rule]
    # A clear winner: 0.90 is 2.5 SE (0.03) above the next, so it wins although the others cut more.
    proposals, outcomes = _constructed([(0.80, 8.0), (0.90, 9.0), (0.82, 8.5)])
    for p, o in zip(proposals, outcomes):
        o["score"] = proposal_score(p, o, 0.9, 10.0, "noise-aware")
    best, noise = choose(proposals, outcomes, "noise-aware", 100)
    assert best == 1 and noise["tied"] == ["p1"] and noise["se"] == pytest.approx(0.03)
    assert tie_note(noise, "noise-aware").startswith("clear")


def test_noise_aware_breaks_an_exact_latency_tie_by_accuracy_then_order():
    proposals, outcomes = _constructed([(0.78, 9.0), (0.80, 9.0), (0.79, 9.0), (0.80, 9.0)])
    for o in outcomes:
        o["score"] = o["accuracy"]
    assert choose(proposals, outcomes, "noise-aware", 100)[0] == 1
    assert choose(proposals, outcomes, "noise-aware", 100)[1]["tied"] == ["p0", "p1", "p2", "p3"]
    _, outcomes_failed = _constructed([(None, 9.0), (None, 8.0)])
    for o in outcomes_failed:
        o["score"] = -math.inf
    assert choose(proposals[:2], outcomes_failed, "noise-aware", 100)[0] == -1


@pytest.mark.parametrize("rule", ["noise-aware", "accuracy", "ratio", "latency"])
def test_only_weights_that_can_still_win_are_kept(rule):
    """Whatever comes later, the final winner is among those `may_win` kept at every step."""
    rng = random.Random(rule)
    for _ in range(200):
        n = rng.choice([10, 100, 1000])
        runs = [(round(rng.random(), 2) if rng.random() > 0.1 else None, rng.choice([8.0, 8.5, 9.0]))
                for _ in range(rng.randint(1, 8))]
        proposals, outcomes = _constructed(runs)
        for p, o in zip(proposals, outcomes):
            o["score"] = proposal_score(p, o, 0.5, 10.0, rule)
        best, _ = choose(proposals, outcomes, rule, n)
        if best >= 0:
            assert all(best in may_win(outcomes[:j], rule, n) for j in range(best + 1, len(outcomes) + 1))


# One iteration (9.5 -> 9.2 ms). blocks[1].exp is luckiest (0.45, SE 0.0497 on 100 images); the group
# bottleneck(blocks[3]..blocks[4]) is 0.01 behind, within noise, and cuts 0.5 ms instead of 0.375.
NEAR_TIE = {"blocks[1].exp": 0.45, "bottleneck(blocks[3]..blocks[4])": 0.44}


def test_the_log_records_the_noise_and_the_tie_the_choice_used(tiny, scripted, tmp_path, caplog):
    spec, _ = tiny
    scripted.score = lambda p: NEAR_TIE.get(p.knob.label, 0.3)
    caplog.set_level(logging.DEBUG, logger="nas.netadapt.netadapt_run")
    result = scripted_run(spec, 9.2, tmp_path, select="noise-aware")
    seed, record = iterations(tmp_path)
    assert seed["noise"] == {"n_val": 100, "accuracy": 0.5, "se": 0.05}
    assert record["select"] == "noise-aware"
    assert record["noise"] == {"n_val": 100, "accuracy": 0.45, "se": pytest.approx(math.sqrt(0.45 * 0.55 / 100)),
                               "tie_se": 1.0, "tied": ["blocks[1].exp", "bottleneck(blocks[3]..blocks[4])"]}
    assert record["chosen"]["knob"] == "bottleneck(blocks[3]..blocks[4])" and result["latency_ms"] == 9.0
    assert [p["knob"] for p in record["proposals"] if p["tied"]] == record["noise"]["tied"]
    index = [p["knob"] for p in record["proposals"]].index("bottleneck(blocks[3]..blocks[4])")
    assert torch.load(tmp_path / record["checkpoint"]["weights"])["w"].tolist() == [1.0, index]  # its weights
    assert result["history"][-1]["se"] == pytest.approx(0.0497, abs=1e-4) and result["history"][-1]["tied"] == 2
    line = next(m for m in caplog.messages if m.startswith("iteration 1: 9.000 ms"))
    assert "± 0.0497 (1 SE on 100 images" in line
    assert "tied: 2 proposals within 1 SE of the best top-1 0.4500, broken by the largest latency cut" in line


def test_the_accuracy_rule_takes_the_luckiest_and_logs_that_it_was_a_tie(tiny, scripted, tmp_path, caplog):
    spec, _ = tiny
    scripted.score = lambda p: NEAR_TIE.get(p.knob.label, 0.3)
    caplog.set_level(logging.DEBUG, logger="nas.netadapt.netadapt_run")
    scripted_run(spec, 9.2, tmp_path, select="accuracy")
    record = iterations(tmp_path)[1]
    assert record["chosen"]["knob"] == "blocks[1].exp" and len(record["noise"]["tied"]) == 2
    assert any("accuracy chose among them by noise" in m for m in caplog.messages)


def test_a_clear_winner_wins_under_noise_aware_too(tiny, scripted, tmp_path):
    spec, _ = tiny
    clear = {**NEAR_TIE, "blocks[1].exp": 0.60}  # SE 0.049: 0.44 is 3 SE behind
    scripted.score = lambda p: clear.get(p.knob.label, 0.3)
    scripted_run(spec, 9.2, tmp_path, select="noise-aware")
    record = iterations(tmp_path)[1]
    assert record["chosen"]["knob"] == "blocks[1].exp" and record["noise"]["tied"] == ["blocks[1].exp"]


def test_select_latency_takes_the_largest_cut_whatever_its_accuracy(tiny, scripted, tmp_path):
    spec, _ = tiny
    clear = {**NEAR_TIE, "blocks[1].exp": 0.60}
    scripted.score = lambda p: clear.get(p.knob.label, 0.3)
    scripted_run(spec, 9.2, tmp_path, select="latency")
    assert iterations(tmp_path)[1]["chosen"]["knob"] == "bottleneck(blocks[1]..blocks[2])"  # the first two-node group


def test_a_stopped_run_with_a_torn_log_is_refused_without_resume(tiny, scripted, tmp_path):
    spec, _ = tiny
    scripted.score = prefer("blocks[4].exp")
    scripted_run(spec, 8.0, tmp_path, max_iterations=2)
    with open(tmp_path / "netadapt.jsonl", "a") as f:
        f.write('{"type": "iteration", "iterat')  # a crash in the middle of a line
    with pytest.raises(UserError, match="--resume"):
        scripted_run(spec, 8.0, tmp_path)


def test_noise_aware_resume_gives_the_uninterrupted_run(tiny, scripted, tmp_path):
    spec, _ = tiny
    # Accuracies on a 0.01 grid around 0.5, a function of the proposed network: ties at SE 0.05 are many.
    scripted.score = lambda p: round(random.Random(p.spec.content_hash()).uniform(0.4, 0.6), 2)
    straight = scripted_run(spec, 7.0, tmp_path / "straight", select="noise-aware")
    part = scripted_run(spec, 7.0, tmp_path / "part", select="noise-aware", max_iterations=2)
    assert not part["reached"]
    rounds = len(scripted.rounds)
    resumed = scripted_run(spec, 7.0, tmp_path / "part", select="noise-aware", resume=True)
    assert len(scripted.rounds) - rounds == straight["iterations"] - 2  # resumed: only the rest ran
    a, b = iterations(tmp_path / "straight"), iterations(tmp_path / "part")
    assert [(r["spec"], r["accuracy"], r.get("noise")) for r in a] == [(r["spec"], r["accuracy"], r.get("noise"))
                                                                        for r in b]
    assert resumed["arch_hash"] == straight["arch_hash"] and straight["iterations"] >= 4
    assert any(len(r["noise"]["tied"]) > 1 for r in a[1:])  # the resumed choices really were tie-breaks
    with pytest.raises(UserError, match="select"):
        scripted_run(spec, 7.0, tmp_path / "part", select="ratio", resume=True)
