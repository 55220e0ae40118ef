"""The one budget table (nas.budgets): its values, its users, and the --budget flags that offer it."""
from __future__ import annotations

from dataclasses import replace

import pytest

from helpers import REFERENCE
from nas.budgets import BUDGETS, AccuracyBudget, Budget, NetAdaptBudget, SearchBudget, get_budget
from nas.runtime.errors import UserError

SPEC = str(REFERENCE / "mobilenetv3_small.yaml")


def test_every_budget_has_its_three_parts():
    assert list(BUDGETS) == ["smoke", "default", "paper"]
    for name, budget in BUDGETS.items():
        assert isinstance(budget, Budget) and budget.name == name
        assert isinstance(budget.search, SearchBudget)
        assert isinstance(budget.accuracy, AccuracyBudget) and budget.accuracy.name == name
        assert isinstance(budget.netadapt, NetAdaptBudget) and budget.netadapt.name == name


def test_the_values_are_those_of_the_three_tables_it_replaces():
    search = {n: (b.search.samples, b.search.batch_size, b.search.proxy, b.search.map_networks)
              for n, b in BUDGETS.items()}
    assert search == {"smoke": (96, 16, "params", 3), "default": (2000, 16, "params", 8),
                      "paper": (8000, 64, "train-5ep", 0)}
    acc = {n: (b.accuracy.proxy.train_images, b.accuracy.proxy.epochs, b.accuracy.proxy.lr,
               b.accuracy.reference.epochs, b.accuracy.audit_epochs, b.accuracy.zero_cost_batch)
           for n, b in BUDGETS.items()}
    assert acc == {"smoke": (256, 1, 0.125, 2, (1, 2), 16), "default": (2000, 1, 0.25, 5, (1, 2), 64),
                   "paper": (50000, 5, None, 30, (1, 2, 5), 128)}
    na = {n: (b.netadapt.steps, b.netadapt.final_steps, b.netadapt.delta, b.netadapt.parallel)
          for n, b in BUDGETS.items()}
    assert na == {"smoke": (4, 0, 0.05, "none"), "default": (20, 300, 0.01, "none"), "paper": (200, 2000, 0.01, "ray")}
    # NetAdapt's seed training is the accuracy proxy's recipe, longer.
    for name, epochs in (("smoke", 4), ("default", 5), ("paper", 5)):
        b = BUDGETS[name]
        assert b.netadapt.train == replace(b.accuracy.proxy, epochs=epochs)


def test_after_a_search_netadapt_takes_the_pipelines_changes():
    inside = {n: b.netadapt.in_pipeline() for n, b in BUDGETS.items()}
    assert (inside["smoke"].delta, inside["smoke"].final_steps) == (0.1, 0)
    assert (inside["default"].delta, inside["default"].final_steps) == (0.04, 0)
    assert inside["paper"] == replace(BUDGETS["paper"].netadapt, after_search=())
    assert all(b.after_search == () and b.steps == BUDGETS[n].netadapt.steps for n, b in inside.items())


def test_an_unknown_budget_is_a_one_line_error_naming_the_flag():
    with pytest.raises(UserError) as info:
        get_budget("infinite")
    assert info.value.setting == "budget" and "infinite" in str(info.value) and "\n" not in str(info.value)
    assert all(name in str(info.value) for name in BUDGETS)


def test_the_users_read_the_one_table():
    from nas.accuracy.proxy import make_proxy
    from nas.netadapt.netadapt_config import NetAdaptConfig, make_config

    config = make_config(5.0, budget="smoke")
    b = BUDGETS["smoke"].netadapt
    assert (config.train, config.steps, config.final_steps, config.delta, config.parallel) == (
        b.train, b.steps, b.final_steps, b.delta, b.parallel)
    assert NetAdaptConfig(target_ms=5.0).train == BUDGETS["default"].netadapt.train
    assert make_proxy("train", "smoke").config.train == BUDGETS["smoke"].accuracy.proxy
    assert make_proxy("reference", BUDGETS["paper"]).config.train == BUDGETS["paper"].accuracy.reference


@pytest.mark.parametrize("module, argv", [
    ("nas.netadapt.__main__", ["--spec", SPEC, "--target-ms", "5"]),
    ("nas.proxies.__main__", ["train", "--spec", SPEC]),
    ("nas.search.__main__", ["--target-ms", "5"]),
])
def test_every_budget_flag_offers_the_table(module, argv, capsys):
    import importlib

    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as info:
        main([*argv, "--budget", "infinite"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--budget" in err
    offered = err[err.index("choose from"):]
    assert all(f"'{name}'" in offered for name in BUDGETS) and offered.count("'") == 2 * len(BUDGETS)
