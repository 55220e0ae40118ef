"""The run-config layer: defaults <- file <- flags, every value with its origin, errors that name it."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import yaml

from nas.pipeline.run_config import CONFIG_KEYS, new_run_config, saved_run_config, validate_config
from nas.runtime.settings import DEFAULT, describe_origin, layer, located, read_config_file
from nas.runtime.errors import UserError


def args(**given):
    """A parsed command line: the flags `given`, every other one left out."""
    return SimpleNamespace(**({key: None for key in CONFIG_KEYS} | {"config": None} | given))


def test_flags_beat_the_file_which_beats_the_defaults():
    values, origins = layer({"a": 1, "b": 2, "c": 3}, {"b": 20, "c": 30}, "run.yaml", {"c": 300, "a": None})
    assert values == {"a": 1, "b": 20, "c": 300}
    assert origins == {"a": (DEFAULT, "--a"), "b": ("run.yaml", "b"), "c": (None, "--c")}
    assert [describe_origin(origins, k) for k in "abc"] == ["default", "run.yaml:b", "flag --c"]


def test_an_error_names_the_file_and_key_or_the_flag(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("target_ms: 50\nreward_w: 3\n")
    with pytest.raises(UserError) as err:
        new_run_config(args(config=str(path)))
    assert (err.value.source, err.value.field) == (str(path), "reward_w")
    with pytest.raises(UserError) as err:
        new_run_config(args(config=str(path), reward_w=-9.0))
    assert (err.value.source, err.value.field, err.value.setting) == (None, None, "reward_w")
    assert "must be a number in [-2, 0], got -9.0" in str(err.value)


def test_unknown_keys_are_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("target_ms: 50\nbogus: 1\n")
    with pytest.raises(UserError, match="bogus: unknown key"):
        read_config_file(path, CONFIG_KEYS)


def test_located_moves_a_setting_blaming_error_to_the_values_origin():
    def fails():
        raise UserError("no such folder", source="/no/such", setting="data")

    with pytest.raises(UserError) as err:
        located({"data": ("run.yaml", "data")}, "data", fails)
    assert (err.value.source, err.value.field, err.value.setting) == ("run.yaml", "data", None)
    assert str(err.value) == "run.yaml: data: /no/such: no such folder"  # the file it named is kept
    with pytest.raises(UserError) as err:  # from a flag: the setting, shown as its flag by a command
        located({"data": (None, "--data")}, "data", fails)
    assert (err.value.source, err.value.field, err.value.setting) == (None, None, "data")
    assert str(err.value) == "data: /no/such: no such folder"
    field_of_the_file = UserError("must be a list", source="table.yaml", field="entries")  # kept as it is
    assert field_of_the_file.located(source="run.yaml", field="device") is field_of_the_file


def test_the_config_is_frozen_and_saves_every_setting():
    config = validate_config({"target_ms": 50}, "run.yaml")
    assert config.target_ms == 50.0 and isinstance(config.target_ms, float)
    assert tuple(config.to_dict()) == CONFIG_KEYS
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3
    assert config.blame("seed", "bad").field == "seed"


def test_resume_may_change_where_it_runs_but_not_what_it_computes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(validate_config({"target_ms": 50}, "x").to_dict()))
    with pytest.raises(UserError, match="--seed 4 differs from this run's saved 0; drop the flag"):
        saved_run_config(run, args(seed=4))
    config = saved_run_config(run, args(trial_retries=3, target_ms=50.0))
    assert config.trial_retries == 3 and config.origins["trial_retries"] == (None, "--trial-retries")
    assert config.origins["seed"] == (str(run / "config.yaml"), "seed")
    with pytest.raises(UserError, match="no config.yaml here"):
        saved_run_config(tmp_path, args())


def test_baselines_default_to_the_budgets(tmp_path):
    from nas.pipeline.stages import Context

    def baselines(config):
        return Context(config, tmp_path, None, False, None).baselines

    assert baselines(validate_config({"target_ms": 50}, "x")) == ("width_scaled",)
    assert baselines(validate_config({"target_ms": 50, "budget": "smoke"}, "x")) == ("width_scaled",)
    assert baselines(validate_config({"target_ms": 50, "budget": "paper"}, "x")) == ("width_scaled", "netadapted")
    assert baselines(validate_config({"target_ms": 50, "baselines": []}, "x")) == ()


def test_the_baselines_flag_takes_none_or_a_list_of_known_names():
    from nas.search.__main__ import parser

    assert parser().parse_args(["--baselines", "none"]).baselines == []
    assert parser().parse_args(["--baselines", "netadapted,width_scaled"]).baselines == ["netadapted", "width_scaled"]
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["--baselines", "width_scaled,uniform"])
    assert exit_.value.code == 2


def test_a_bad_baselines_list_in_a_file_names_its_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("target_ms: 50\nbaselines: [width_scaled, width_scaled]\n")
    with pytest.raises(UserError) as err:
        new_run_config(args(config=str(path)))
    assert (err.value.source, err.value.field) == (str(path), "baselines")


def test_a_supernet_to_reuse_needs_the_supernet_proxy_and_a_trained_one(tmp_path):
    folder = tmp_path / "sn"
    folder.mkdir()
    with pytest.raises(UserError, match="no trained supernet"):
        validate_config({"target_ms": 50, "proxy": "supernet", "supernet": str(folder)}, "run.yaml")
    (folder / "supernet.pt").write_bytes(b"x")  # loaded (and refused if foreign) before the run starts
    assert validate_config({"target_ms": 50, "proxy": "supernet", "supernet": str(folder)}, "x").supernet == str(folder)
    with pytest.raises(UserError, match="only by --proxy supernet"):
        validate_config({"target_ms": 50, "supernet": str(folder)}, "run.yaml")


def test_a_family_of_targets_round_trips_and_splits_into_members(tmp_path):
    """--target-ms 15,25: a tuple in the config, a list in config.yaml, one single-target config per member."""
    config = validate_config({"target_ms": [15, 25.5], "proxy": "supernet"}, "run.yaml")
    assert config.target_ms == (15.0, 25.5) and config.is_family and config.targets == (15.0, 25.5)
    saved = config.to_dict()
    assert saved["target_ms"] == [15.0, 25.5]
    assert validate_config(yaml.safe_load(yaml.safe_dump(saved)), "x") == config
    member = config.for_target(25.5, "/runs/f/supernet-x/supernet.pt")
    assert member.target_ms == 25.5 and not member.is_family and member.targets == (25.5,)
    assert member.supernet == "/runs/f/supernet-x/supernet.pt" and member.seed == config.seed
    assert validate_config({"target_ms": 15}, "x").targets == (15.0,)
    for bad, says in (([15], "2 to 8 targets"), ([15, 15.0], "must differ"), ([15, -1], "> 0"),
                      (list(range(1, 10)), "2 to 8 targets"), ([15, "x"], "got 'x'")):
        with pytest.raises(UserError, match=says) as err:
            validate_config({"target_ms": bad}, "run.yaml")
        assert (err.value.source, err.value.field) == ("run.yaml", "target_ms")


def test_the_target_flag_takes_one_number_or_a_comma_separated_family():
    from argparse import ArgumentTypeError

    from nas.search.__main__ import targets

    assert targets("50") == 50.0 and targets("15, 25,35") == [15.0, 25.0, 35.0]
    for bad in ("15,", "fast", "15,-2", "15,nan"):
        with pytest.raises(ArgumentTypeError):
            targets(bad)


def test_a_reward_that_a_target_only_searcher_cannot_use_is_refused_and_the_default_follows_the_searcher():
    from nas.pipeline.run_config import reward_name

    default = new_run_config(args(target_ms=25.0))
    assert (default.algorithm, default.reward, reward_name(default)) == ("guided-evolution", None, "hard")
    assert reward_name(new_run_config(args(target_ms=25.0, algorithm="controller"))) == "tunas"
    assert reward_name(new_run_config(args(target_ms=25.0, algorithm="guided-evolution", reward="hard"))) == "hard"
    with pytest.raises(UserError) as err:
        new_run_config(args(target_ms=25.0, reward="mnasnet"))
    assert err.value.setting == "reward" and "cannot take effect" in str(err.value)


def test_a_ray_cluster_named_only_by_a_file_is_not_joined(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("target_ms: 50\naddress: 203.0.113.7:6379\n")
    with pytest.raises(UserError, match="add --address 203.0.113.7:6379") as err:
        new_run_config(args(config=str(path)))
    assert (err.value.source, err.value.field) == (str(path), "address")
    confirmed = new_run_config(args(config=str(path), address="203.0.113.7:6379"))
    assert confirmed.address == "203.0.113.7:6379"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(confirmed.to_dict()))
    with pytest.raises(UserError, match="add --address") as err:  # a resumed run's saved cluster, the same
        saved_run_config(run, args())
    assert err.value.source == str(run / "config.yaml")
    assert saved_run_config(run, args(address="203.0.113.7:6379")).address == "203.0.113.7:6379"
