"""Built-in data as package data, bare names wherever a path is accepted, runs under ./runs, host
tables in the user cache (keyed by the machine), never in the package."""
from __future__ import annotations

import importlib
import os
import tomllib
from pathlib import Path

import pytest

from helpers import ROOT
from nas.core.space import load_space
from nas.core.spec_file import load_spec
from nas.latency.devices import get_device, host_table_path, load_host_table
from nas.latency.measure import host_fingerprint
from nas.latency.table import LatencyTable
from nas.runtime import paths
from nas.runtime.errors import UserError


def test_builtin_data_is_inside_the_package():
    import nas

    package = Path(nas.__file__).resolve().parent
    for folder in (paths.SPACES_DIR, paths.REFERENCE_DIR, paths.TABLES_DIR):
        assert folder.resolve().is_relative_to(package), folder
    assert (paths.SPACES_DIR / "mobilenetv3_small.yaml").is_file()
    assert (paths.REFERENCE_DIR / "mobilenetv3_large.yaml").is_file()
    assert (paths.TABLES_DIR / "pixel1.yaml").is_file()


def test_repository_folders_are_the_package_data():
    # the project layout keeps its top-level names: they lead to the very same files
    assert (ROOT / "search_spaces").resolve() == paths.SPACES_DIR.resolve()
    assert (ROOT / "latency_tables").resolve() == paths.TABLES_DIR.resolve()


def test_the_wheel_carries_every_data_file():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["nas"]
    package = paths.DATA_ROOT.parent
    carried = {p for pattern in patterns for p in package.glob(pattern)}
    shipped = {p for p in paths.DATA_ROOT.rglob("*") if p.is_file() and not p.name.startswith("host")}
    assert shipped and shipped <= carried, sorted(map(str, shipped - carried))


def test_bare_names_load_builtins_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_space("mobilenetv3_small").name == "mobilenetv3_small"
    assert load_spec("mobilenetv3_large").name == "mobilenetv3_large"
    assert get_device("pixel1").predict(load_spec("mobilenetv3_small")).ms > 0


def test_a_file_here_wins_over_a_builtin_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mobilenetv3_small").write_text((paths.REFERENCE_DIR / "mobilenetv3_large.yaml").read_text())
    assert load_spec("mobilenetv3_small").name == "mobilenetv3_large"


@pytest.mark.parametrize("load, what", [(load_spec, "spec"), (load_space, "search space")])
def test_an_unknown_name_lists_the_builtins(load, what):
    with pytest.raises(UserError) as err:
        load("mobilenetv9")
    message = str(err.value)
    assert message.startswith(f"unknown {what} 'mobilenetv9'") and "mobilenetv3_small" in message
    assert "\n" not in message


def test_a_missing_path_is_still_file_not_found(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="file not found"):
        load_spec(f"{tmp_path}/nope")  # a path, not a name


def test_runs_go_under_the_current_directory():
    assert paths.RUNS_DIR == Path("runs") and not paths.RUNS_DIR.is_absolute()


def test_cache_dir_honours_the_variable_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "mine"))
    assert paths.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("NAS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "nas-mobilenetv3"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.cache_dir() == tmp_path / "home" / ".cache" / "nas-mobilenetv3"


def test_tests_never_touch_the_real_cache():
    assert Path(os.environ["NAS_CACHE_DIR"]).name.startswith("nas-test-cache-")


def test_host_table_is_in_the_cache_keyed_by_the_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))
    one, two = host_table_path(1), host_table_path(2)
    assert one.parent == tmp_path and one.name.startswith("host-t1-") and one != two
    assert host_table_path(1) == one  # stable
    monkeypatch.setattr("nas.latency.devices.host_fingerprint", lambda t: {**host_fingerprint(t), "cpu": "Other"})
    assert host_table_path(1) != one  # another machine, another table
    assert not paths.DATA_ROOT.resolve() in one.resolve().parents


def test_a_shipped_table_for_this_machine_seeds_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    shipped = tmp_path / "tables"
    shipped.mkdir()
    monkeypatch.setattr("nas.latency.devices.TABLES_DIR", shipped)
    here = {"name": "host", **host_fingerprint(1), "batch": 1}
    seed = LatencyTable(here, path=shipped / "host.yaml")
    seed.calibration = {"scale": 1.0, "offset_ms": 0.0}
    seed.save()
    before = (shipped / "host.yaml").read_text()
    table = load_host_table(1)
    assert table.calibration == seed.calibration
    assert table.path == host_table_path(1)  # what it learns goes to the cache ...
    table.save()
    assert (shipped / "host.yaml").read_text() == before and host_table_path(1).is_file()  # ... not the seed
    # a seed measured on another machine is not used (nor refused: it is not the user's table)
    (host_table_path(1)).unlink()
    LatencyTable({**here, "cpu": "Other CPU"}, path=shipped / "host.yaml").save()
    assert not load_host_table(1).calibration


def test_a_users_device_table_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latency_tables").mkdir()
    (tmp_path / "latency_tables" / "board.yaml").write_text((paths.TABLES_DIR / "pixel1.yaml").read_text())
    assert get_device("board").predict(load_spec("mobilenetv3_small")).ms > 0
    with pytest.raises(UserError, match=r"unknown device 'phone' \(known: host, board, note10, pixel1"):
        get_device("phone")


def test_console_scripts_point_at_each_command():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts = config["project"]["scripts"]
    assert set(scripts) == {"nas-search", "nas-inspect", "nas-export", "nas-latency", "nas-proxies", "nas-netadapt",
                            "nas-train", "nas-supernet"}
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target
    # each runs the main of the module `python -m` runs
    from nas.runtime import console

    ran = []
    monkey = pytest.MonkeyPatch()
    monkey.setattr(console, "run_main", ran.append)
    monkey.setattr(console, "exit_quietly_on_ctrl_c", lambda: None)
    try:
        for name in ("search", "inspect", "export", "latency", "proxies", "netadapt", "train", "supernet"):
            getattr(console, name)()
    finally:
        monkey.undo()
    modules = ("nas.search.__main__", "nas.inspect", "nas.export.__main__", "nas.latency.__main__",
               "nas.proxies.__main__", "nas.netadapt.__main__", "nas.train.__main__", "nas.supernet.__main__")
    assert ran == [importlib.import_module(m).main for m in modules]


def test_resume_finds_the_latest_run_under_the_current_directory(tmp_path, monkeypatch):
    from nas.pipeline.rundir import latest_run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no run to resume under runs"):
        latest_run()
    for i, name in enumerate(("older", "newer")):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "config.yaml").write_text("x: 1\n")
        os.utime(tmp_path / "runs" / name / "config.yaml")
        os.utime(tmp_path / "runs" / name, (1_000_000 + i, 1_000_000 + i))
    assert latest_run().resolve() == (tmp_path / "runs" / "newer").resolve()
