"""The one runner: walks a table of stages, records each one's result and seconds in pipeline.json.

A stage is `(name, function)`; the function takes the run's context and returns its typed record
(nas.pipeline.results), whose JSON lands in pipeline.json (`done[name]`, with its `seconds`) before
the next stage starts. So a resumed run skips every stage already done and starts at the first
unfinished one, and a later stage reads an earlier one's record back typed (`RunState.result`).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from nas.pipeline.results import StageResult
from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write_bytes, atomic_write_text, load_json_file

log = logging.getLogger(__name__)

Stage = tuple[str, Callable[[Any], StageResult]]
R = TypeVar("R", bound=StageResult)


class RunState:
    """pipeline.json: {"done": {stage: result + seconds}, "wall_s": ..., and what stages keep between runs}."""

    def __init__(self, path: Path, resume: bool):
        self.path = path
        self.state: dict[str, Any] = self._load() if path.exists() else {"done": {}, "wall_s": 0.0}
        if resume:  # this run's time adds to the time the run had spent before
            self.state["wall_s_before_resume"] = self.state.get("wall_s", 0.0)
        self.started = time.perf_counter()

    def done(self, stage: str) -> dict[str, Any] | None:
        """A finished stage's record as pipeline.json holds it (None: not finished)."""
        return self.state["done"].get(stage)

    def result(self, stage: str, kind: type[R]) -> R | None:
        """A finished stage's record, typed (None: not finished)."""
        saved = self.done(stage)
        try:
            return None if saved is None else kind.from_json(saved)
        except TypeError as err:  # a hand-edited or truncated record
            raise UserError(f"is not a {stage} stage's record: {err}", source=str(self.path),
                            field=f"done.{stage}") from None

    def finished(self) -> dict[str, dict[str, Any]]:
        return dict(self.state["done"])

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)

    def keep(self, key: str, value: Any) -> Any:
        """Store `value` in pipeline.json now: a run interrupted later finds it on --resume."""
        self.state[key] = value
        self.save()
        return value

    def finish(self, stage: str, result: StageResult, seconds: float) -> dict[str, Any]:
        self.state["done"][stage] = {**result.to_json(), "seconds": round(seconds, 2)}
        self.state["wall_s"] = round(self.elapsed(), 2)
        self.save()
        return self.state["done"][stage]

    @property
    def previous(self) -> Path:
        return self.path.with_name(self.path.name + ".prev")

    def _load(self) -> dict[str, Any]:
        """The saved state, checked; a damaged file is one error naming it and its previous copy."""
        try:
            state = load_json_file(self.path)
            if not (isinstance(state, dict) and isinstance(state.get("done"), dict)
                    and all(isinstance(v, dict) for v in state["done"].values())):
                raise UserError("is not a pipeline state (a mapping with a 'done' mapping of stages)",
                                source=str(self.path))
        except UserError as err:
            keep = (f"; the state before the last stage is in {self.previous.name}: copy it over "
                    f"{self.path.name} to resume from there") if self.previous.is_file() else ""
            raise err.reworded(f"{err.message}{keep}") from None
        return state

    def save(self) -> None:
        """The new state whole or not at all, and the last good one beside it (a later damaged file, a
        disk error or an edit gone wrong then loses one stage at most)."""
        if self.path.is_file():
            atomic_write_bytes(self.previous, self.path.read_bytes())
        atomic_write_text(self.path, json.dumps(self.state, indent=1, sort_keys=True))

    def elapsed(self) -> float:
        return self.state.get("wall_s_before_resume", 0.0) + time.perf_counter() - self.started


def run_stages(stages: Sequence[Stage], state: RunState, context: Any) -> None:
    """Run each stage not yet done, in order, saving its result before the next starts."""
    for name, stage in stages:
        if state.done(name) is not None:
            log.debug("%s: done in an earlier run", name)
            continue
        t0 = time.perf_counter()
        result = stage(context)
        if not isinstance(result, StageResult):
            raise TypeError(f"stage {name} returned {type(result).__name__}, not a StageResult")
        state.finish(name, result, time.perf_counter() - t0)
        log.info("%s: done in %.1f s", name, time.perf_counter() - t0)
