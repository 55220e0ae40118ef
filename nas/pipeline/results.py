"""What each stage of a run hands the stages after it: one typed record per stage.

pipeline.json keeps each record as its JSON (`to_json`), with the runner's `seconds`; a resumed
run reads it back (`from_json`). Every field is written, a None as null, but those a class names in
`OMIT_NULL`: optional keys that pipeline.json has only where they apply (`queries` where NetAdapt
moved an accuracy model's choices).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="StageResult")


@dataclass(frozen=True, kw_only=True)
class StageResult:
    seconds: float | None = None  # the runner's: how long the stage took (all its runs together)
    OMIT_NULL: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        omit = ("seconds", *self.OMIT_NULL)
        return {k: v for k, v in values.items() if v is not None or k not in omit}

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any]) -> R:
        """The record pipeline.json holds; keys this version does not know (an older or newer run's)
        are left out; a missing required one is a TypeError naming it."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, kw_only=True)
class SupernetStage(StageResult):
    """The run's weight-sharing supernet: trained here, reused from --supernet, or skipped."""
    note: str
    skipped: bool | None = None
    checkpoint: str | None = None
    trained: bool | None = None
    epochs: int | None = None
    steps: int | None = None
    train_images: int | None = None
    seconds_per_epoch: float | None = None
    largest_accuracy: float | None = None
    smallest_accuracy: float | None = None
    wall_s: float | None = None
    joint: dict[str, Any] | None = None  # TuNAS: what the controller learned while the supernet trained
    space: str | None = None  # a family's shared supernet: its space and the targets that use it
    targets: list[float] | None = None
    OMIT_NULL: ClassVar[tuple[str, ...]] = ("skipped", "checkpoint", "trained", "epochs", "steps", "train_images",
                                            "seconds_per_epoch", "largest_accuracy", "smallest_accuracy", "wall_s",
                                            "joint", "space", "targets")


@dataclass(frozen=True, kw_only=True)
class SearchStage(StageResult):
    samples: int
    score_map: dict[str, float] | None = None  # zero-cost score -> accuracy, where one was fitted


@dataclass(frozen=True, kw_only=True)
class SelectStage(StageResult):
    note: str
    latency_ms: float  # the seed's predicted latency


@dataclass(frozen=True, kw_only=True)
class AdaptStage(StageResult):
    iterations: int
    accuracy: float | None  # None: no network NetAdapt could train
    latency_ms: float
    note: str
    inherited: bool  # started from the supernet's weights
    weights: str | None = None  # the adapted network's weights, where NetAdapt trained it
    queries: int | None = None  # on an accuracy model's choices: how many networks it scored
    OMIT_NULL: ClassVar[tuple[str, ...]] = ("queries",)


@dataclass(frozen=True, kw_only=True)
class ExportStage(StageResult):
    """final.onnx, checked against torch and timed on this host with ONNX Runtime (fp32)."""
    max_abs_diff: float
    latency_ms: float
    latency_p10_ms: float
    latency_p90_ms: float
    params: int
    macs: int


@dataclass(frozen=True, kw_only=True)
class CompareStage(StageResult):
    rows: list[dict[str, Any]]  # the final network first, then each baseline
    verdict: str
    seeds: list[int]
    accuracy_source: str | None = None  # for an ImageNet accuracy model: whose model it is
    OMIT_NULL: ClassVar[tuple[str, ...]] = ("accuracy_source",)


@dataclass(frozen=True, kw_only=True)
class DeployStage(StageResult):
    tflite: str | None = None
    int8: dict[str, Any] | None = None
    tflite_note: str | None = None
    tflite_max_abs_diff: float | None = None
    OMIT_NULL: ClassVar[tuple[str, ...]] = ("tflite_note", "tflite_max_abs_diff")


@dataclass(frozen=True, kw_only=True)
class ReportStage(StageResult):
    report: str | None = None  # a family's report and plot (a run's report is report.md in its folder)
    plot: str | None = None
    OMIT_NULL: ClassVar[tuple[str, ...]] = ("report", "plot")


@dataclass(frozen=True, kw_only=True)
class MemberStage(StageResult):
    """A family member: what its own run prints with --json."""
    final_spec: str
    onnx: str
    predicted_ms: float
    measured_host_ms: float
    proxy_accuracy: float | None
    proxy_accuracy_sd: float | None
    samples: int
    wall_s: float
    target_ms: float
    device: str
    space: str
    netadapt_iterations: int
    params: int
    macs: int
    max_abs_diff: float
    comparison: list[dict[str, Any]]
    verdict: str
    train_command: str
    tflite: str | None
    deploy: dict[str, Any] | None
    report: str
    run_dir: str

    def printed(self) -> dict[str, Any]:
        """The member's record less the runner's seconds: what the member run itself prints."""
        return {k: v for k, v in self.to_json().items() if k != "seconds"}

