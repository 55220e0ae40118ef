"""A latency table saved by several writers keeps every measurement (locked read-merge-write); two real
processes at once: tests/integration/latency/test_lock_table_processes.py."""
from __future__ import annotations

import pytest

from nas.export.timing import Timing
from nas.latency.table import LatencyTable, lock_path
from nas.runtime.errors import UserError

DEVICE = {"name": "host", "cpu": "test"}
T = Timing(1.0, 0.9, 1.1, 36)


def _start(path, keys=("a",), calibration=None) -> LatencyTable:
    table = LatencyTable(DEVICE, {k: T for k in keys}, calibration, path=path)
    table.save()
    return LatencyTable.load(path)


def test_two_writers_from_one_snapshot_keep_both_entries(tmp_path):
    path = tmp_path / "host.yaml"
    _start(path)
    first, second = LatencyTable.load(path), LatencyTable.load(path)
    first.add("x", T)
    first.save(merge=True)
    second.add("y", Timing(2.0, 1.9, 2.1, 36))
    second.save(merge=True)  # an unmerged save here dropped "x"
    assert set(LatencyTable.load(path).ops) == {"a", "x", "y"}
    assert set(second.ops) == {"a", "x", "y"}  # the writer now sees the other's entries too
    assert lock_path(path).exists() and lock_path(path).name == ".host.yaml.lock"


def test_an_unmerged_save_replaces_the_file(tmp_path):
    path = tmp_path / "host.yaml"
    _start(path, keys=("old",))
    fresh = LatencyTable(DEVICE, path=path)  # a --force build
    fresh.add("new", T)
    fresh.save()
    assert set(LatencyTable.load(path).ops) == {"new"}


def test_a_merge_does_not_bring_back_what_a_rebuild_dropped(tmp_path):
    path = tmp_path / "host.yaml"
    stale = _start(path, keys=("old",))
    rebuilt = LatencyTable(DEVICE, path=path)
    rebuilt.add("new", T)
    rebuilt.save()
    stale.add("mine", T)
    stale.save(merge=True)
    assert set(LatencyTable.load(path).ops) == {"new", "mine"}


def test_calibration_is_kept_unless_this_writer_changed_it(tmp_path):
    path = tmp_path / "host.yaml"
    _start(path)
    measurer, calibrator = LatencyTable.load(path), LatencyTable.load(path)
    calibrator.calibration = {"scale": 1.1, "offset_ms": 0.1}
    calibrator.save(merge=True)
    measurer.add("x", T)
    measurer.save(merge=True)
    saved = LatencyTable.load(path)
    assert saved.calibration == {"scale": 1.1, "offset_ms": 0.1} and "x" in saved.ops


def test_a_table_of_another_device_on_disk_is_not_merged_into(tmp_path):
    path = tmp_path / "host.yaml"
    mine = _start(path)
    LatencyTable({"name": "host", "cpu": "other"}, {"b": T}, path=path).save()
    mine.add("x", T)
    with pytest.raises(UserError, match="another device"):
        mine.save(merge=True)
    assert set(LatencyTable.load(path).ops) == {"b"}  # left as it was
