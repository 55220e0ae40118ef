"""Files from elsewhere: nothing in the package unpickles a file, and torch's weights_only holds."""
from __future__ import annotations

import ast
import re
import tomllib

import pytest

from helpers import ROOT

# The one reader of pickles: CIFAR's python batches are pickles by definition, read by an
# unpickler that admits dicts, lists and numpy arrays only (nas/accuracy/datasets.py).
RESTRICTED_UNPICKLER = "nas/accuracy/datasets.py"


def _calls(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                names.append(f"{f.value.id}.{f.attr}")
    return names


def test_no_module_unpickles_a_file():
    offenders = []
    for path in sorted((ROOT / "nas").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        calls = _calls(ast.parse(path.read_text()))
        bad = [c for c in calls if c in ("pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads",
                                         "dill.load", "joblib.load")]
        if bad and rel != RESTRICTED_UNPICKLER:
            offenders.append(f"{rel}: {bad}")
    assert offenders == []


def test_every_torch_load_is_weights_only():
    for path in sorted((ROOT / "nas").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in kw and getattr(kw["weights_only"], "value", None) is True, \
                    f"{path.relative_to(ROOT)}:{node.lineno}"


def test_the_torch_floor_has_no_known_weights_only_bypass():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(d for d in deps if re.match(r"torch\b", d))
    floor = re.search(r">=\s*(\d+)\.(\d+)", torch)
    assert floor and (int(floor.group(1)), int(floor.group(2))) >= (2, 6), torch


def test_a_name_from_a_file_cannot_steer_an_output_path():
    from dataclasses import replace

    from nas.core.space import load_space
    from nas.netadapt.netadapt_config import default_out
    from nas.runtime.paths import RUNS_DIR, path_slug

    for name in ("../../etc/evil", "/abs/path", "..", ".hidden", "a b/c", ""):
        slug = path_slug(name)
        assert "/" not in slug and not slug.startswith(".") and slug
    spec = load_space("mobilenetv3_small").decode(load_space("mobilenetv3_small").seed_tokens())
    out = default_out(replace(spec, name="../../../tmp/x"), "pixel1", 15.0, 0)
    assert out.parent == RUNS_DIR and ".." not in out.parts


def test_links_planted_in_a_run_folder_never_lead_a_write_elsewhere(tmp_path):
    import os

    import pytest

    from nas.runtime.errors import UserError
    from nas.runtime.files import atomic_write_text
    from nas.runtime.jsonl import JsonlWriter, repair
    from nas.runtime.lock import run_lock

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link") as err:
        with run_lock(run):
            pass
    assert err.value.source == str(run / ".lock")
    (run / "samples.jsonl").symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link"):
        JsonlWriter(run / "samples.jsonl")
    victim.write_text('{"a": 1}\n{"torn')
    with pytest.raises(UserError, match="symbolic link"):
        repair(run / "samples.jsonl")
    assert victim.read_text() == '{"a": 1}\n{"torn'
    (run / f".state.json.tmp{os.getpid()}").symlink_to(victim)  # the atomic writer's temporary name
    atomic_write_text(run / "state.json", "{}")
    assert (run / "state.json").read_text() == "{}" and victim.read_text() == '{"a": 1}\n{"torn'
    assert not (run / f".state.json.tmp{os.getpid()}").exists()


def test_deeply_nested_json_is_one_error_naming_the_file(tmp_path):
    import pytest

    from nas.runtime.errors import UserError
    from nas.runtime.files import load_json_file
    from nas.runtime.jsonl import read_jsonl

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nested too deeply") as err:
        load_json_file(deep)
    assert err.value.source == str(deep)
    log = tmp_path / "samples.jsonl"
    log.write_text('{"i": 0}\n' + "[" * 100_000 + "]" * 100_000 + '\n{"i": 1}\n')
    with pytest.raises(UserError, match="line 2 is not a JSON object"):
        read_jsonl(log)


def test_a_full_disk_is_one_line_naming_the_path(tmp_path, monkeypatch):
    import errno
    import os

    import pytest

    from nas.runtime.errors import UserError
    from nas.runtime.files import atomic_write_text
    from nas.runtime.jsonl import JsonlWriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    writer = JsonlWriter(tmp_path / "samples.jsonl")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match="No space left on device") as err:
        writer.write({"i": 0})
    assert err.value.source == str(tmp_path / "samples.jsonl")
    with pytest.raises(UserError, match="No space left on device") as err:
        atomic_write_text(tmp_path / "state.json", "{}")
    assert err.value.source == str(tmp_path / "state.json") and not (tmp_path / "state.json").exists()


def test_the_ray_token_is_made_private(tmp_path, caplog):
    import os
    import stat

    from nas.runtime.session import private_token

    token = tmp_path / "auth_token"
    token.write_text("secret")
    token.chmod(0o644)
    with caplog.at_level("WARNING"):
        private_token(str(token))
    assert stat.S_IMODE(os.stat(token).st_mode) == 0o600 and "made" in caplog.text and "private" in caplog.text
    caplog.clear()
    private_token(str(token))  # already private: nothing to say
    private_token(str(tmp_path / "none"))  # no token: nothing to do
    assert caplog.text == ""


# ---- the searcher's checkpoint keeps its previous copy ---------------------------------------

def _search(run_dir, resume=False, crash_at=None, samples=24):
    """A random search of the tiny space scored by parameter count (cheap, deterministic), killed at
    its `crash_at`-th evaluation when asked."""
    import torch

    from helpers import DATA
    from nas.core.counts import count_params
    from nas.core.space import load_space
    from nas.latency.devices import get_device
    from nas.search.algorithms import make_algorithm
    from nas.search.search_loop import Evaluator, SearchRun
    from nas.search.reward import RewardConfig

    class Proxy:
        cheap, calls = True, 0

        def evaluate(self, spec):
            Proxy.calls += 1
            if Proxy.calls == crash_at:
                raise _Crash()
            return {"score": float(count_params(spec)), "accuracy": None, "failed": False, "seconds": 0.0}

    torch.set_num_threads(1)
    space = load_space(DATA / "tiny_space.yaml")
    evaluator = Evaluator(get_device("pixel1"), Proxy(), RewardConfig.hard(1.3), lambda r: min(1.0, r["score"] / 1e6))
    return SearchRun(run_dir, space, make_algorithm("evolution", space, seed=3, population=8, tournament=3),
                     evaluator, samples, resume=resume)


class _Crash(BaseException):
    """The process dies here."""


def _log(run_dir):
    from nas.runtime.jsonl import read_jsonl

    return [(r["i"], tuple(r["tokens"]), r["reward"]) for r in read_jsonl(run_dir / "samples.jsonl")]


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_searcher_checkpoint_names_its_good_previous_copy(tmp_path):
    """Every save keeps the checkpoint it replaces as searcher.ckpt.prev. A damaged searcher.ckpt is
    refused by name; where the previous copy is whole and agrees with the log the line gives the
    command that resumes from it, and that resume logs what an uninterrupted run logs."""
    import shlex
    import subprocess

    import pytest

    from nas.runtime.errors import UserError
    from nas.search.algorithms import read_state

    _search(tmp_path / "ref").run_inprocess(8)
    expected = _log(tmp_path / "ref")
    assert len(expected) == 24 and read_state(tmp_path / "ref" / "searcher.ckpt.prev")["told"] == 16

    for crash_at in (None, 13):  # finished (the copy is of the last ask), or killed mid-batch (of the last tell)
        run = tmp_path / f"run-{crash_at}"
        if crash_at:
            with pytest.raises(_Crash):
                _search(run, crash_at=crash_at).run_inprocess(8)
        else:
            _search(run).run_inprocess(8)
        state = run / "searcher.ckpt"
        _flip(state)
        with pytest.raises(UserError, match="checksum does not match") as err:
            _search(run, resume=True)
        line = str(err.value)
        assert err.value.source == str(state) and "\n" not in line
        assert f"previous copy {run / 'searcher.ckpt.prev'} is whole and agrees" in line
        command = line.split("`")[1]
        assert shlex.split(command)[0] == "cp"
        subprocess.run(shlex.split(command), check=True)
        _search(run, resume=True).run_inprocess(8)
        assert _log(run) == expected, crash_at


def test_a_previous_checkpoint_that_disagrees_with_the_log_is_not_offered(tmp_path):
    import pytest

    from nas.runtime.errors import UserError

    run = tmp_path / "run"
    with pytest.raises(_Crash):
        _search(run, crash_at=13).run_inprocess(8)
    previous = run / "searcher.ckpt.prev"
    older = previous.read_bytes()  # after the first batch's tell: 8 told
    _search(run, resume=True).run_inprocess(8)
    _flip(run / "searcher.ckpt")
    previous.write_bytes(older)  # the log now holds 24 samples the copy never asked
    with pytest.raises(UserError, match="cannot stand in .sample 8 is in the log but not in it.; start a new run"):
        _search(run, resume=True)
    _flip(previous)  # a damaged copy: named as such
    with pytest.raises(UserError, match=r"cannot stand in \(corrupt searcher checkpoint"):
        _search(run, resume=True)
    previous.unlink()
    with pytest.raises(UserError, match=r"checksum does not match\); start a new run with another --out$"):
        _search(run, resume=True)


def test_a_linked_searcher_checkpoint_is_refused_not_followed(tmp_path):
    import pytest

    from nas.runtime.errors import UserError

    run = tmp_path / "run"
    _search(run, samples=8).run_inprocess(8)
    victim = tmp_path / "elsewhere.ckpt"
    (run / "searcher.ckpt").rename(victim)
    (run / "searcher.ckpt").symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link") as err:
        _search(run, resume=True)
    assert err.value.source == str(run / "searcher.ckpt")


# ---- specs of absurd size --------------------------------------------------------------------
# Every block within its bounds, the whole network over the caps on parameters or MACs (through the
# commands: tests/integration/project/test_security_commands.py).

@pytest.fixture
def huge(tmp_path):
    """MobileNetV3-Small with every block at the per-block bound (8192 channels): 1e9 parameters."""
    from helpers.malformed import oversized_spec

    path = tmp_path / "huge.yaml"
    path.write_text(oversized_spec(10**6))
    return path


def test_a_spec_of_absurd_size_is_refused_by_its_totals_before_a_model_is_built(huge, monkeypatch):
    """One error naming the file and its largest part, counted from the spec alone."""
    import nas.core.model
    from nas.core.spec_file import load_spec
    from nas.runtime.errors import UserError

    def no_model(*args):  # the totals come from the spec alone: a 1e9-parameter model is never built
        raise AssertionError("load_spec built the model")

    monkeypatch.setattr(nas.core.model, "build_model", no_model)
    with pytest.raises(UserError, match=r"1,048,983,096 parameters, more than the cap of 1,000,000,000") as err:
        load_spec(huge)
    assert err.value.source == str(huge) and err.value.field == "blocks[0]" and "--max-params" in str(err.value)


def test_spec_limits_raise_the_caps_inside_its_block_only(huge):
    """What --max-params / --max-macs do for a command."""
    from nas.core.check import MAX_MACS, MAX_PARAMS
    from nas.core.spec_file import load_spec, spec_limits
    from nas.runtime.errors import UserError

    with spec_limits(max_params=2 * MAX_PARAMS, max_macs=10 * MAX_MACS):
        assert len(load_spec(huge).blocks) == 11
    with pytest.raises(UserError, match="parameters"):  # the caps are back after the block
        load_spec(huge)


def test_mobilenetv3_large_as_wide_as_the_bounds_allow_is_inside_the_caps(tmp_path):
    from nas.core.spec import save_spec, scale_width
    from nas.core.spec_file import load_spec

    wide = tmp_path / "wide.yaml"
    save_spec(scale_width(load_spec("mobilenetv3_large"), 6), wide)  # 6x its width
    load_spec(wide)
