"""The compare stage on ground truth: rows beside others' networks, each top-1 labelled by its source."""
from __future__ import annotations

import pytest

from nas.accuracy.proxy import make_proxy
from nas.groundtruth.accel import accel_space, spec_of
from nas.groundtruth.known_networks import groundtruth_comparison
from nas.groundtruth.records import accel_records
from nas.groundtruth.ofa import ofa_space
from nas.latency.devices import get_device


def test_accel_compares_with_the_best_record_that_meets_the_target():
    device, proxy = get_device("pixel1"), make_proxy("accel-imagenet")
    result = groundtruth_comparison(accel_space().seed_spec(), "pixel1", device, proxy, 80.0)
    final, best = result["rows"]
    assert best["kind"] == "best_known" and best["latency_ms"] <= 80.0
    records = accel_records()
    meeting = [r for r in records if device.predict(spec_of(r["architecture"])).ms <= 80.0]
    top = max(meeting, key=lambda r: r["metrics"]["val_top1"])
    assert f"{top['metrics']['val_top1'] / 100:.4f}" in best["note"]
    assert best["difference"]["mean"] == pytest.approx(final["accuracy_mean"] - best["accuracy_mean"])
    assert "surrogate" in final["accuracy_label"] and "measured" not in final["accuracy_label"]


def test_ofa_compares_with_the_nearest_specialised_network_and_one_scored_like_for_like():
    device, proxy = get_device("note10"), make_proxy("ofa-imagenet")
    result = groundtruth_comparison(ofa_space().seed_spec(), "note10", device, proxy, 25.0)
    names = [r["name"] for r in result["rows"][1:]]
    assert names == ["note10_lat-22ms_top1-76.6_finetune-25", "note10_lat-30ms_top1-78.4_finetune-75"]
    published, like = result["rows"][1:]
    assert published["accuracy_mean"] == pytest.approx(0.766) and "published" in published["accuracy_label"]
    assert like["accuracy_label"] == proxy.label and like["judgement"] == "same model, no seed noise"
    assert "not like for like" in published["judgement"]
