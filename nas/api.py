"""The Python door beside the command line: the same pipeline, settings and run directory as
`python -m nas.search`, with typed results.

    import nas

    result = nas.search(target_ms=15.8, space="mobilenetv3_small", budget="smoke")
    result.final_spec, result.predicted_ms, result.accuracy

    pipeline = nas.Pipeline(target_ms=15.8, space="mobilenetv3_small", budget="smoke", out="runs/mine")
    pipeline.config.origin("budget")     # "python"; "default", "flag --seed" or "FILE:key" elsewhere
    result = pipeline.run()              # resume=True continues an interrupted run

A setting has the name of its flag (`--target-ms` is `target_ms`); a bad one raises `UserError`
naming it, before anything is written. See docs/python.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from nas.core.spec import ArchSpec
from nas.core.spec_file import load_spec
from nas.pipeline.run_config import CONFIG_KEYS, DEFAULTS, RunConfig, read_saved_config, validate_config
from nas.runtime.settings import DEFAULT, PYTHON, Origins, flag
from nas.runtime.errors import UserError
from nas.pipeline.rundir import check_new_run_dir, default_run_dir
from nas.accuracy.proxy_config import DataConfig
from nas.accuracy.proxy import make_proxy


@dataclass(frozen=True)
class Accuracy:
    """An accuracy with its noise: mean and seed-to-seed sd over `seeds` trainings, or a model's
    prediction (`label` says whose; `sd` is then None)."""

    mean: float
    sd: float | None
    seeds: int | None
    label: str | None = None

    def __str__(self) -> str:
        if self.label:
            return f"{self.mean:.4f} ({self.label})"
        return f"{self.mean:.4f} ± {self.sd or 0:.4f} ({self.seeds} seeds)"


@dataclass(frozen=True)
class SearchResult:
    """What a run found: the final network, its latency (predicted on the device and measured on
    this host), its accuracy with noise, the equal-latency comparison and where the files are."""

    run_dir: Path
    final_spec: ArchSpec
    target_ms: float
    device: str
    space: str
    predicted_ms: float
    predicted_p10_ms: float
    predicted_p90_ms: float
    measured_host_ms: float
    accuracy: Accuracy
    params: int
    macs: int
    verdict: str
    comparison: tuple[Mapping[str, Any], ...]  # the compare stage's rows, the final network first
    onnx: Path
    tflite: Path | None
    report: Path
    summary: Mapping[str, Any]  # summary.json as written

    @classmethod
    def from_run(cls, run_dir: str | Path, summary: Mapping[str, Any] | None = None) -> "SearchResult":
        """The result of a finished run directory (its summary.json)."""
        run_dir = Path(run_dir)
        if summary is None:
            path = run_dir / "summary.json"
            if not path.is_file():
                raise UserError("no summary.json: the run has not finished", source=str(run_dir))
            summary = json.loads(path.read_text())
        s = summary
        final = s["comparison"][0]
        return cls(
            run_dir=run_dir, final_spec=load_spec(s["final_spec"]), target_ms=s["target_ms"], device=s["device"],
            space=s["space"], predicted_ms=s["predicted_ms"], predicted_p10_ms=s["predicted_p10_ms"],
            predicted_p90_ms=s["predicted_p90_ms"], measured_host_ms=s["measured_host_ms"],
            accuracy=Accuracy(s["proxy_accuracy"], s.get("proxy_accuracy_sd"), final.get("seeds"),
                              s.get("accuracy_label")),
            params=s["params"], macs=s["macs"], verdict=s["verdict"], comparison=tuple(s["comparison"]),
            onnx=Path(s["onnx"]), tflite=Path(s["tflite"]) if s.get("tflite") else None,
            report=run_dir / "report.md", summary=dict(s))


def run_config(settings: Mapping[str, Any], origins: Origins | None = None) -> RunConfig:
    """A search run's settings, checked once: the defaults <- `settings` (each remembered as given
    from Python unless `origins` says otherwise)."""
    unknown = [k for k in settings if k not in CONFIG_KEYS]
    if unknown:
        raise UserError(f"unknown setting(s) {', '.join(unknown)} (one of {', '.join(CONFIG_KEYS)})",
                        setting=unknown[0])
    values = {key: _plain(value) for key, value in settings.items()}
    where = {key: (DEFAULT, flag(key)) for key in DEFAULTS} | {key: (PYTHON, key) for key in (*values, "target_ms")}
    where |= dict(origins or {})
    return validate_config(values, where)


def _plain(value: Any) -> Any:
    """Python's natural spellings of a setting, as a config file holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


class Pipeline:
    """One search run: search -> NetAdapt -> export -> compare -> deploy -> report, in `out`
    (default: ./runs/<family>-<target>ms-<device>-<time>)."""

    def __init__(self, config: RunConfig | Mapping[str, Any] | None = None, *, out: str | Path | None = None,
                 **settings: Any):
        if isinstance(config, RunConfig):
            if settings:
                raise UserError("give a RunConfig or settings, not both", setting=next(iter(settings)))
            self.config = config
        else:
            self.config = run_config({**(config or {}), **settings})
        if self.config.is_family:
            raise UserError("one target per Pipeline (a family of targets: python -m nas.search "
                            "--target-ms 15,25,...)", setting="target_ms")
        self.out = None if out is None else Path(out)

    @property
    def run_dir(self) -> Path:
        if self.out is None:
            self.out = default_run_dir(self.config)
        return self.out

    def run(self, resume: bool = False) -> SearchResult:
        """Every stage not yet done; with `resume`, an interrupted run in `out` continues where it
        stopped (its saved settings must equal these)."""
        from nas.pipeline.launch import launch  # deferred: loads numpy

        run_dir = self.run_dir
        saved = read_saved_config(run_dir) if resume else None
        if not resume:
            check_new_run_dir(run_dir)
        elif saved != self.config:
            differ = [k for k in CONFIG_KEYS if getattr(saved, k) != getattr(self.config, k)]
            raise UserError(f"differs from this run's saved settings in {', '.join(differ)}; resume with the same "
                            f"settings, or start a new run", source=str(run_dir / "config.yaml"), field=differ[0])
        return SearchResult.from_run(run_dir, launch(self.config, run_dir, resume))


def search(target_ms: float, *, out: str | Path | None = None, resume: bool = False, **settings: Any) -> SearchResult:
    """Run the whole pipeline for one target latency (ms) and return what it found.

    Settings are the command line's, by key: space, device, proxy, budget, seed, algorithm, reward,
    reward_w, samples, dataset, data, address, cpus, trial_retries, baselines, deploy, supernet.
    Names of proxies, devices, spaces, algorithms, rewards and budgets are those registered in
    `nas.PROXIES`, `nas.DEVICES`, ... (a user's own included)."""
    return Pipeline(target_ms=target_ms, out=out, **settings).run(resume=resume)


def _spec(spec: ArchSpec | str | Path) -> ArchSpec:
    return spec if isinstance(spec, ArchSpec) else load_spec(spec)


def predict_latency(spec: ArchSpec | str | Path, device: Any = "pixel1"):
    """The device's predicted latency of a network (`Prediction`: ms, p10, p90); `device` is a name
    registered in `nas.DEVICES` or a table's path, or a device object."""
    from nas.latency.devices import get_device  # deferred: loads torch

    return (get_device(device) if isinstance(device, str) else device).predict(_spec(spec))


def score(spec: ArchSpec | str | Path, proxy: str = "params", *, budget: str = "default",
          dataset: str = "fashion-mnist", data: str | None = None, seed: int = 0) -> dict[str, Any]:
    """One proxy's verdict on a network: a dict with `score` (higher is better), `accuracy` (a
    top-1 in [0, 1] for training proxies, None for zero-cost scores), `seconds` and `failed`."""
    return make_proxy(proxy, budget, data=DataConfig(dataset=dataset, path=data), seed=seed).evaluate(_spec(spec))


def netadapt(spec: ArchSpec | str | Path, target_ms: float, device: Any = "pixel1", **options: Any) -> dict[str, Any]:
    """NetAdapt: shrink the network's layer widths until its predicted latency meets `target_ms`
    (options: those of `nas.netadapt.netadapt_run.run_netadapt`: budget, out_dir, resume, seed, weights, ...)."""
    from nas.netadapt.netadapt_run import run_netadapt  # deferred: loads torch

    return run_netadapt(_spec(spec), target_ms, device, **options)


def export(spec: ArchSpec | str | Path, out: str | Path, **options: Any) -> dict[str, Any]:
    """The network as ONNX at `out`, checked against torch and timed on this host (options:
    weights, verify, time_it, threads, runs, seed)."""
    from nas.export.onnx import export_spec  # deferred: loads torch

    return export_spec(_spec(spec), out, **options)


def train(spec: ArchSpec | str | Path, out: str | Path, *, dataset: str = "fashion-mnist", data: str | None = None,
          **options: Any) -> dict[str, Any]:
    """Train the network with MobileNetV3's recipe, scaled to the run (options: those of
    `nas.train.training_run.TrainRequest`: epochs, batch_size, seed, resume, workers, address, ...)."""
    from nas.train.training_run import TrainRequest, run_training  # deferred: loads torch

    return run_training(TrainRequest(_spec(spec), DataConfig(dataset=dataset, path=data), Path(out),
                                     **{"progress": False, **options}))
