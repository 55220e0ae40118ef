"""The pipeline's one runner (a table of stages, pipeline.json, resume) and the search stage's score map."""
from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

import pytest

from helpers import DATA
from nas.pipeline import stages
from nas.pipeline.run_config import validate_config
from nas.pipeline.prepare import Prepared
from nas.pipeline.results import AdaptStage, SearchStage, SelectStage, StageResult
from nas.pipeline.runner import RunState, run_stages
from nas.runtime.errors import UserError


@dataclass(frozen=True, kw_only=True)
class Value(StageResult):
    value: str | None = None
    n: int | None = None
    OMIT_NULL: ClassVar[tuple[str, ...]] = ("value", "n")


def recording(name, calls, result=None, fail=False):
    def stage(ctx):
        calls.append(name)
        if fail:
            raise KeyboardInterrupt  # Ctrl-C in the middle of this stage
        return Value(value=name) if result is None else result
    return stage


def test_stages_run_in_order_and_each_result_is_saved_with_its_seconds(tmp_path):
    calls, path = [], tmp_path / "pipeline.json"
    seen_on_disk = []

    def peek(ctx):  # what pipeline.json holds when the second stage starts
        seen_on_disk.append(json.loads(path.read_text())["done"])
        return Value()

    state = RunState(path, resume=False)
    run_stages([("a", recording("a", calls)), ("b", peek), ("c", recording("c", calls, Value(n=3)))], state, None)
    assert calls == ["a", "c"]
    assert set(seen_on_disk[0]) == {"a"} and seen_on_disk[0]["a"]["value"] == "a"
    saved = json.loads(path.read_text())
    assert list(saved["done"]) == ["a", "b", "c"] and saved["done"]["c"]["n"] == 3
    assert all(isinstance(r["seconds"], float) for r in saved["done"].values())
    assert saved["wall_s"] >= 0


def test_resume_starts_at_the_first_unfinished_stage(tmp_path):
    calls, path = [], tmp_path / "pipeline.json"
    table = [("a", recording("a", calls)), ("b", recording("b", calls, fail=True)), ("c", recording("c", calls))]
    with pytest.raises(KeyboardInterrupt):
        run_stages(table, RunState(path, resume=False), None)
    assert list(json.loads(path.read_text())["done"]) == ["a"]  # b was not finished, c never started

    calls.clear()
    table[1] = ("b", recording("b", calls))
    resumed = RunState(path, resume=True)
    before = resumed.get("wall_s")
    run_stages(table, resumed, None)
    assert calls == ["b", "c"]
    saved = json.loads(path.read_text())
    assert list(saved["done"]) == ["a", "b", "c"]
    assert saved["wall_s_before_resume"] == before and saved["wall_s"] >= before  # time adds up over runs

    calls.clear()
    run_stages(table, RunState(path, resume=True), None)  # a finished run redoes nothing
    assert calls == []


def test_a_stage_must_return_its_typed_record(tmp_path):
    with pytest.raises(TypeError, match="stage x returned dict, not a StageResult"):
        run_stages([("x", lambda ctx: {"samples": 1})], RunState(tmp_path / "pipeline.json", resume=False), None)
    assert not (tmp_path / "pipeline.json").exists()


def test_a_stage_record_reads_back_typed_with_the_same_json(tmp_path):
    """pipeline.json keeps the keys it always had (a null where a class keeps one, no key for other
    unset fields); a resumed run reads the record back as the class, the runner's seconds with it."""
    path = tmp_path / "pipeline.json"
    state = RunState(path, resume=False)
    state.finish("search", SearchStage(samples=3), 1.0)
    state.finish("netadapt", AdaptStage(iterations=2, accuracy=0.5, latency_ms=9.5, note="", inherited=False), 2.0)
    saved = json.loads(path.read_text())["done"]
    assert saved["search"] == {"samples": 3, "score_map": None, "seconds": 1.0}
    assert saved["netadapt"] == {"iterations": 2, "accuracy": 0.5, "latency_ms": 9.5, "note": "", "inherited": False,
                                 "weights": None, "seconds": 2.0}  # no "queries": it was not set
    resumed = RunState(path, resume=True)
    assert resumed.result("search", SearchStage) == SearchStage(samples=3, seconds=1.0)
    assert resumed.result("netadapt", AdaptStage).latency_ms == 9.5
    assert resumed.result("select", SelectStage) is None  # not finished
    saved["select"] = {"seconds": 0.1}  # an edit that lost the stage's keys: one line naming file and stage
    path.write_text(json.dumps({"done": saved}))
    with pytest.raises(UserError, match=r"pipeline.json: done.select: is not a select stage's record: .*'note'"):
        RunState(path, resume=True).result("select", SelectStage)


def test_a_record_from_another_version_keeps_what_this_one_knows():
    assert SearchStage.from_json({"samples": 4, "new_key": 1}) == SearchStage(samples=4)
    with pytest.raises(TypeError, match="samples"):
        SearchStage.from_json({"score_map": None})


def test_the_pipeline_is_a_table_of_stages():
    assert [name for name, _ in stages.STAGES] == ["supernet", "search", "select", "netadapt", "export", "compare",
                                                   "deploy", "report"]
    assert all(callable(fn) for _, fn in stages.STAGES)


def test_score_map_is_kept_as_soon_as_it_is_fitted(tmp_path, monkeypatch):
    """A search interrupted after the score map was fitted resumes with that map, not a refit."""
    from nas.core.space import load_space
    from nas.latency.devices import get_device

    fits = []

    def fake_fit(*args):
        fits.append(args)
        return {"slope": 0.5, "intercept": 0.1, "fit": len(fits)}

    class InterruptedSearch:  # Ctrl-C as the search starts sampling
        def __init__(self, *args, **kwargs):
            self.done = 0

        def run_inprocess(self, batch_size):
            raise KeyboardInterrupt

    monkeypatch.setattr(stages, "fit_score_map", fake_fit)
    monkeypatch.setattr(stages, "SearchRun", InterruptedSearch)
    config = validate_config({"target_ms": 5.0, "budget": "smoke", "algorithm": "random"}, "test.yaml")
    space = load_space(DATA / "tiny_space.yaml")
    prepared = Prepared(get_device("pixel1"), space, "given", None, SimpleNamespace(cheap=True, predicts_accuracy=False), "macs")

    def context(resume):
        state = RunState(tmp_path / "pipeline.json", resume=resume)
        return stages.Context(config, tmp_path, prepared, resume, state)

    ctx = context(False)
    with pytest.raises(KeyboardInterrupt):
        run_stages(stages.STAGES, ctx.state, ctx)
    assert len(fits) == 1
    assert json.loads((tmp_path / "pipeline.json").read_text())["score_map"]["fit"] == 1
    ctx = context(True)
    with pytest.raises(KeyboardInterrupt):
        run_stages(stages.STAGES, ctx.state, ctx)
    assert len(fits) == 1  # the resumed search used the kept map


@pytest.mark.parametrize("text", ["", "{\"done\": {", "\xff not json"])
def test_a_damaged_pipeline_json_is_one_user_error_naming_it(tmp_path, text):
    from nas.runtime.errors import UserError

    path = tmp_path / "pipeline.json"
    path.write_text(text, encoding="latin-1")
    with pytest.raises(UserError, match="pipeline.json"):
        RunState(path, resume=True)


def test_a_damaged_pipeline_state_is_one_error_and_the_previous_copy_is_kept(tmp_path):
    from nas.runtime.errors import UserError

    path = tmp_path / "pipeline.json"
    state = RunState(path, resume=False)
    state.finish("search", Value(n=3), 1.0)
    state.finish("select", Value(value="best"), 0.1)
    assert json.loads((tmp_path / "pipeline.json.prev").read_text())["done"] == {"search": {"n": 3, "seconds": 1.0}}
    for damaged in ('{"done": {"search": {"samp', '["not", "a", "state"]', '{"done": {"search": 3}}'):
        path.write_text(damaged)
        with pytest.raises(UserError, match="pipeline.json.prev") as err:
            RunState(path, resume=True)
        assert err.value.source == str(path)
    path.write_bytes((tmp_path / "pipeline.json.prev").read_bytes())  # what the message says to do
    assert RunState(path, resume=True).done("search") == {"n": 3, "seconds": 1.0}
