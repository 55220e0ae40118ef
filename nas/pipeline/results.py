"""What each stage of a run hands the stages after it: one typed record per stage.

pipeline.json keeps each record as its JSON (`to_json`), with the runner's `seconds`; a resumed
run reads it back (`from_json`). A field left at None is not written, except those a class names
in `KEEP_NULL` (pipeline.json has always said `"weights": null` where NetAdapt kept none).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="StageResult")


@dataclass(frozen=True, kw_only=True)
class StageResult:
    seconds: float | None = None  # the runner's: how long the stage took (all its runs together)
    KEEP_NULL: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in values.items() if v is not None or k in self.KEEP_NULL}

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


@dataclass(frozen=True, kw_only=True)
class SearchStage(StageResult):
    samples: int
    score_map: dict[str, float] | None = None  # zero-cost score -> accuracy, where one was fitted
    KEEP_NULL: ClassVar[tuple[str, ...]] = ("score_map",)


@dataclass(frozen=True, kw_only=True)
class SelectStage(StageResult):
    note: str
    latency_ms: float  # the seed's predicted latency


@dataclass(frozen=True, kw_only=True)
class AdaptStage(StageResult):
    iterations: int
    accuracy: float
    latency_ms: float
    note: str
    inherited: bool  # started from the supernet's weights
    weights: str | None = None  # the adapted network's weights, where NetAdapt trained it
    queries: int | None = None  # on an accuracy model's choices: how many networks it scored
    KEEP_NULL: ClassVar[tuple[str, ...]] = ("weights",)


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


@dataclass(frozen=True, kw_only=True)
class DeployStage(StageResult):
    tflite: str | None = None
    int8: dict[str, Any] | None = None
    tflite_note: str | None = None
    tflite_max_abs_diff: float | None = None
    KEEP_NULL: ClassVar[tuple[str, ...]] = ("tflite", "int8")


@dataclass(frozen=True, kw_only=True)
class ReportStage(StageResult):
    report: str | None = None  # a family's report and plot (a run's report is report.md in its folder)
    plot: str | None = None


@dataclass(frozen=True, kw_only=True)
class MemberStage(StageResult):
    """A family member: what its own run prints with --json."""
    final_spec: str
    onnx: str
    predicted_ms: float
    measured_host_ms: float
    proxy_accuracy: float
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


MemberStage.KEEP_NULL = tuple(f.name for f in fields(MemberStage) if f.name != "seconds")  # every key, always
