"""NetAdapt on a space's own choices, scored by an accuracy model of the space."""
from __future__ import annotations

import pytest

from nas.accuracy.proxy import make_proxy
from nas.groundtruth.ofa import ofa_space
from nas.latency.devices import get_device
from nas.netadapt.choices import adapt_on_choices
from nas.runtime.errors import UserError
from nas.runtime.jsonl import read_jsonl


@pytest.mark.parametrize("rule", ["ratio", "accuracy"])
def test_it_reaches_the_target_on_the_spaces_choices_and_logs_every_step(tmp_path, rule):
    space, device, proxy = ofa_space(), get_device("note10"), make_proxy("ofa-imagenet")
    seed = space.seed_spec()  # the largest network, 224 px: about 60 ms
    result = adapt_on_choices(seed, space, device, proxy, 25.0, rule=rule, log_path=tmp_path / "na.jsonl")
    assert result["met"] and result["latency_ms"] <= 25.0
    assert device.predict(result["spec"]).ms == pytest.approx(result["latency_ms"])
    space.encode(result["spec"])  # still a network of the space
    history = read_jsonl(tmp_path / "na.jsonl")
    assert len(history) == result["iterations"] + 1
    lat = [h["latency_ms"] for h in history]
    assert all(b < a for a, b in zip(lat, lat[1:]))
    assert result["accuracy"] == pytest.approx(proxy.evaluate(result["spec"])["accuracy"])


def test_a_run_is_deterministic_so_a_resumed_pipeline_recomputes_it_exactly():
    space, device, proxy = ofa_space(), get_device("note10"), make_proxy("ofa-imagenet")
    a = adapt_on_choices(space.seed_spec(), space, device, proxy, 25.0, delta=0.1)
    b = adapt_on_choices(space.seed_spec(), space, device, proxy, 25.0, delta=0.1)
    assert a["history"] == b["history"] and a["spec"] == b["spec"]


def test_a_bad_rule_and_a_network_outside_the_space_are_refused():
    from nas.core.space import load_space

    space, device, proxy = ofa_space(), get_device("note10"), make_proxy("ofa-imagenet")
    with pytest.raises(UserError, match="rule"):
        adapt_on_choices(space.seed_spec(), space, device, proxy, 25.0, rule="best")
    with pytest.raises(UserError, match="stem"):
        adapt_on_choices(load_space("mobilenetv3_small").seed_spec(), space, device, proxy, 25.0)
