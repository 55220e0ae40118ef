"""Files from elsewhere: nothing in the package unpickles a file, and torch's weights_only holds."""
from __future__ import annotations

import ast
import re
import tomllib

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
    from nas.netadapt.config import default_out
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


def test_seeds_targets_and_counts_out_of_range_are_one_line_and_exit_2():
    from helpers import run_cli

    for args in (["nas.search", "--target-ms", "20", "--seed", "-1"], ["nas.latency", "validate", "--seed", "-3"],
                 ["nas.search", "--target-ms", "1e-310"], ["nas.search", "--target-ms", "20", "--seed", str(2**40)],
                 ["nas.latency", "validate", "--samples", "99999999"], ["nas.train", "x.yaml", "--workers", "100000"],
                 ["nas.proxies", "audit", "--samples", "10", "--reference-seeds", "1000"]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)


def test_a_flag_that_cannot_take_effect_is_refused():
    from helpers import run_cli

    proc = run_cli("nas.netadapt", "--spec", "mobilenetv3_small", "--target-ms", "10", "--budget", "smoke",
                   "--address", "10.0.0.1:6379")
    assert proc.returncode == 2 and "--address" in proc.stderr and "--parallel ray" in proc.stderr, proc.stderr


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
