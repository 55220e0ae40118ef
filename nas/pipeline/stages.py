"""The pipeline's stages, [supernet ->] search -> select -> NetAdapt -> export -> compare -> report, as a table.

Each stage takes the run's `Context` and returns its typed record (nas.pipeline.results), which
pipeline.json keeps; what a later stage needs from an earlier one it reads back from the run
directory (samples.jsonl, best.yaml, final.yaml) or from that stage's record, so a resumed run
needs nothing in memory.
"""
from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.spec import ArchSpec, save_spec, spec_from_string
from nas.core.spec_file import load_spec
from nas.budgets import Budget, get_budget
from nas.pipeline.compare import latency_points, run_comparison
from nas.pipeline.run_config import DEPLOY, RunConfig, reward_name
from nas.pipeline.deploy import convert_job, run_deploy
from nas.pipeline.prepare import Prepared
from nas.pipeline.results import (AdaptStage, CompareStage, DeployStage, ExportStage, MemberStage, ReportStage,
                                  SearchStage, SelectStage, SupernetStage)
from nas.pipeline.runner import RunState, Stage, run_stages
from nas.pipeline.score_map import fit_score_map
from nas.pipeline.select import select_seed
from nas.runtime.files import atomic_write_text
from nas.runtime.jsonl import read_jsonl
from nas.runtime.registry import REWARDS
from nas.supernet.supernet_checkpoint import read_checkpoint
from nas.supernet.supernet_proxy import SupernetProxy
from nas.runtime.log import progress_enabled
from nas.supernet.supernet_run import CHECKPOINT, SupernetRequest, load_calibrated_extractor, train_supernet
from nas.accuracy.proxy import TrainingProxy
from nas.search.algorithms import make_algorithm
from nas.search.guided import token_latency
from nas.search.search_loop import Evaluator, SearchRun
from nas.runtime.session import set_threads
from nas.netadapt.choices import adapt_on_choices as adapt_widths_on_choices
from nas.groundtruth.known_networks import groundtruth_comparison
from nas.runtime.errors import UserError, VerificationError

log = logging.getLogger(__name__)


@dataclass
class Context:
    config: RunConfig
    run_dir: Path
    prepared: Prepared
    resume: bool
    state: RunState

    @property
    def budget(self) -> Budget:
        return get_budget(self.config.budget)

    @property
    def baselines(self) -> tuple[str, ...]:
        return tuple(self.config.baselines) if self.config.baselines is not None else self.budget.baselines

    @property
    def deploy(self) -> tuple[str, ...]:
        return tuple(self.config.deploy) if self.config.deploy is not None else DEPLOY

    @property
    def samples(self) -> int:
        return self.config.samples or self.budget.search.samples

    @property
    def reward_w(self) -> float:
        return self.config.reward_w if self.config.reward_w is not None else self.prepared.space.reward_w

    def reward(self):
        return REWARDS.lookup(reward_name(self.config))(self.config.target_ms, self.reward_w)

    @cached_property
    def records(self) -> list[dict]:
        return read_jsonl(self.run_dir / "search" / "samples.jsonl")

    @cached_property
    def best(self) -> ArchSpec:
        return load_spec(self.run_dir / "best.yaml")

    @cached_property
    def final(self) -> ArchSpec:
        return load_spec(self.run_dir / "final.yaml")


def score_map(ctx: Context) -> dict[str, float]:
    """The zero-cost score map, fitted once per run: kept in pipeline.json as soon as it is fitted,
    so that a search interrupted after it resumes with the same map (refitting costs training)."""
    kept = ctx.state.get("score_map")
    if kept:
        return kept
    p = ctx.prepared
    fitted = fit_score_map(p.space, p.proxy, p.proxy_name, ctx.budget, p.data, ctx.config.seed)
    return ctx.state.keep("score_map", fitted)


def run_supernet(ctx: Context) -> SupernetStage:
    """--proxy supernet: train the run's one weight-sharing supernet (resumable by epoch), or take the
    one --supernet names; other proxies skip this stage."""
    config, p = ctx.config, ctx.prepared
    if not isinstance(p.proxy, SupernetProxy):
        return SupernetStage(skipped=True, note=f"skipped: the proxy is {p.proxy_name}")
    if config.supernet:
        state = config.located("supernet", lambda: read_checkpoint(Path(config.supernet)))  # checked in prepare
        path = Path(config.supernet)
        path = path / "supernet.pt" if path.is_dir() else path
        return SupernetStage(checkpoint=str(path.resolve()), trained=False, epochs=int(state["epoch"]),
                             note=f"reused {path}")
    space = p.space.name if config.space == "auto" else config.space  # a file's path, or a built-in's name
    joint = joint_learner(ctx) if config.algorithm == "tunas" else {}
    return train_run_supernet(space, p.data, ctx.run_dir / "supernet", ctx.budget, config.seed, **joint)


def joint_learner(ctx: Context) -> dict[str, Any]:
    """--algorithm tunas: the controller that draws the supernet's paths and learns as it trains."""
    from nas.search.joint import JointConfig, JointLearner  # deferred: loads torch

    p, config, reward, joint = ctx.prepared, ctx.config, ctx.reward(), JointConfig()
    identity = {"target_ms": config.target_ms, "device": config.device, "reward": reward.to_dict(),
                **joint.as_dict()}
    return {"learner": lambda steps: JointLearner(p.space, p.device, reward, steps, joint, seed=config.seed),
            "learner_identity": identity}


def train_run_supernet(space: str, data, out: Path, budget: Budget, seed: int, learner=None,
                       learner_identity=None) -> SupernetStage:
    """A run's (or a family's) supernet, trained into `out` with the budget's recipe; resumes by epoch.
    With a learner (TuNAS's joint search) the controller trains with it."""
    request = SupernetRequest(space=space, data=data, out=out, config=budget.accuracy.supernet, seed=seed,
                              resume=(out / CHECKPOINT).exists(), progress=progress_enabled(), learner=learner,
                              learner_identity=learner_identity)
    result = train_supernet(request)
    if not result["finished"]:
        raise RuntimeError(f"supernet training failed: {result['reason']}")
    keep = ("checkpoint", "epochs", "steps", "train_images", "seconds_per_epoch", "largest_accuracy",
            "smallest_accuracy", "wall_s", "joint")
    note = (f"trained {result['epochs']} epochs on {result['train_images']:,} images; top-1 of the largest path "
            f"{result['largest_accuracy']:.3f}, the smallest {result['smallest_accuracy']:.3f}")
    if "joint" in result:
        j = result["joint"]
        note += (f"; jointly with the controller ({j['updates']} updates after {j['warmup_steps']} warm-up steps: "
                 f"reward {j['reward_first']:.3f} -> {j['reward_last']:.3f}, entropy {j['entropy_first']:.2f} -> "
                 f"{j['entropy_last']:.2f})")
    return SupernetStage(trained=True, **{k: result[k] for k in keep if k in result}, note=note)


def run_search(ctx: Context) -> SearchStage:
    from tqdm import tqdm  # deferred: tqdm takes ~0.1 s to load

    p, config, budget = ctx.prepared, ctx.config, ctx.budget
    trained = ctx.state.result("supernet", SupernetStage)
    if trained and trained.checkpoint:  # --proxy supernet: score with the run's supernet
        p.proxy.use(trained.checkpoint)
    to_accuracy, fitted = None, None
    if p.proxy.cheap and not p.proxy.predicts_accuracy:
        fitted = score_map(ctx)
        a, b = fitted["slope"], fitted["intercept"]
        to_accuracy = lambda r: float(np.clip(a * r["score"] + b, 0.01, 1.0))  # noqa: E731
    evaluator = Evaluator(p.device, p.proxy, ctx.reward(), to_accuracy)
    options = {"batch_size": budget.search.batch_size} if config.algorithm in ("controller", "tunas") else {}
    space, device, target = p.space, p.device, config.target_ms
    latency = token_latency(space, device)
    if config.algorithm == "ofa-evolution":  # it proposes only networks that meet the target
        options["feasible"] = lambda tokens: latency([tokens])[0] <= target
    if config.algorithm == "guided-evolution":  # it too, and it screens many candidates at once
        # A short search (a smoke run) still leaves the model most of its queries.
        options.update(target_ms=target, start=min(100, max(2, ctx.samples // 4)),
                       batch=min(50, max(1, ctx.samples // 8)),
                       latency=latency)
    if config.algorithm == "tunas":  # continue from the controller the joint training left
        options["controller_state"] = read_checkpoint(Path(trained.checkpoint))["learner"]["controller"]
    algorithm = make_algorithm(config.algorithm, p.space, seed=config.seed, **options)
    with tqdm(total=ctx.samples, desc="search", unit="arch", leave=False, mininterval=1,
              disable=not progress_enabled()) as bar:
        run = SearchRun(ctx.run_dir / "search", p.space, algorithm, evaluator, ctx.samples, resume=ctx.resume,
                        progress=bar.update)
        bar.update(run.done)
        if not isinstance(p.proxy, TrainingProxy):  # zero-cost scores and cascades run here; training on Ray
            if p.proxy.predicts_accuracy:
                # Only the controller's small LSTM computes here: one thread is fastest, and two fight
                # anything else on the cores (2,000 queries took 13 times longer beside a busy core).
                set_threads(1)
            records = run.run_inprocess(batch_size=getattr(algorithm, "batch_size", budget.search.batch_size))
        else:
            records = run.run_on_ray(p.proxy.config, address=config.address, cpus=config.cpus,
                                     max_failures=config.trial_retries)
    return SearchStage(samples=len(records), score_map=fitted)


def run_select(ctx: Context) -> SelectStage:
    """The best network that NetAdapt can bring down to the target."""
    device, p = ctx.prepared.device, ctx.prepared
    # A model of the space's networks (an ImageNet predictor, the run's supernet) cannot score, or lend
    # weights to, a network widened out of the space.
    widen = not (p.proxy.predicts_accuracy or p.proxy_name == "supernet")
    best, note = select_seed(ctx.records, p.space, device, ctx.config.target_ms, widen=widen)
    save_spec(best, ctx.run_dir / "best.yaml")
    return SelectStage(note=note, latency_ms=device.predict(best).ms)


def run_adapt(ctx: Context) -> AdaptStage:
    from nas.netadapt.netadapt_run import run_netadapt  # deferred: loads torch

    config, p = ctx.config, ctx.prepared
    if p.proxy.predicts_accuracy:  # an accuracy model of the space: NetAdapt moves its choices
        return adapt_on_choices(ctx)
    weights = inherited_weights(ctx, ctx.best)
    result = run_netadapt(ctx.best, target_ms=config.target_ms, device=p.device, weights=weights,
                          budget=ctx.budget.netadapt.in_pipeline(), data=p.data, out_dir=ctx.run_dir / "netadapt",
                          resume=ctx.resume, seed=config.seed, trial_retries=config.trial_retries,
                          address=config.address)
    name = f"{p.space.family}-{config.target_ms:g}ms-{config.device.replace(':', '-')}"
    save_spec(replace(result["spec"], name=name), ctx.run_dir / "final.yaml")
    return AdaptStage(iterations=result["iterations"], accuracy=result["accuracy"], latency_ms=result["latency_ms"],
                      weights=result.get("weights_path"), inherited=weights is not None,
                      note=("started from the supernet's weights; " if weights is not None else "")
                      + result.get("message", ""))


def adapt_on_choices(ctx: Context) -> AdaptStage:
    config, p = ctx.config, ctx.prepared
    result = adapt_widths_on_choices(ctx.best, p.space, p.device, p.proxy, config.target_ms,
                                     log_path=ctx.run_dir / "netadapt" / "netadapt.jsonl")
    spec, accuracy, latency, note = result["spec"], result["accuracy"], result["latency_ms"], result["message"]
    # The accuracy model is exact for its space: a sample the search already found under the target
    # may beat what NetAdapt made of the best one above it; the more accurate of the two is final.
    met = [r for r in ctx.records if not r.get("failed") and r["latency_ms"] <= config.target_ms]
    best = max(met, key=lambda r: r["accuracy"], default=None)
    # (records keep 6 decimals: a tie with the network NetAdapt started from is no improvement)
    if best is not None and best["arch"] != spec.to_string() and (best["accuracy"] > accuracy + 1e-6
                                                                 or not result["met"]):
        spec, accuracy, latency = spec_from_string(best["arch"]), best["accuracy"], best["latency_ms"]
        note += (f"; the search's sample {best['i']} under the target is more accurate "
                 f"({100 * best['accuracy']:.2f}% against {100 * result['accuracy']:.2f}%) and is final")
    name = f"{p.space.family}-{config.target_ms:g}ms-{config.device.replace(':', '-')}"
    save_spec(replace(spec, name=name), ctx.run_dir / "final.yaml")
    return AdaptStage(iterations=result["iterations"], accuracy=accuracy, latency_ms=latency, weights=None,
                      inherited=False, queries=result["queries"], note=note)


def run_compare(ctx: Context) -> CompareStage:
    """The final network and its equal-latency baselines: trained from scratch, or, for a proxy that
    predicts ImageNet top-1, beside the networks others found in the space (nothing trained)."""
    p = ctx.prepared
    if not p.proxy.predicts_accuracy:
        return CompareStage(**run_comparison(ctx, side=convert_job(ctx)))
    result = groundtruth_comparison(ctx.final, ctx.config.device, p.device, p.proxy, ctx.config.target_ms)
    log.info(result["verdict"])
    return CompareStage(**result)


def inherited_weights(ctx: Context, spec: ArchSpec):
    """With the supernet proxy, the spec's weights cut from the run's supernet (NetAdapt then skips the
    seed's training); None otherwise, or where the spec is no path of it (select widened it)."""
    trained = ctx.state.result("supernet", SupernetStage)
    if trained is None or not trained.checkpoint:
        return None

    extract = load_calibrated_extractor(trained.checkpoint)
    try:
        return extract(spec).state_dict()
    except UserError as err:
        log.info("NetAdapt trains its seed: %s", err)
        return None


def run_export(ctx: Context) -> ExportStage:
    """ONNX, checked against torch and timed on this host."""
    from nas.export.onnx import export_spec  # deferred: loads torch

    # A failed check raises before final.onnx is written; the stage stays undone (--resume retries it).
    try:
        exported = export_spec(ctx.final, ctx.run_dir / "final.onnx", verify=True, time_it=True)
    except VerificationError as err:
        raise VerificationError(f"export stage: {err}") from None
    return ExportStage(**{k: exported[k] for k in ("max_abs_diff", "latency_ms", "latency_p10_ms",
                                                   "latency_p90_ms", "params", "macs")})


def run_report(ctx: Context) -> ReportStage:
    from nas.export.report import write_report  # deferred: loads scipy

    summary = summarize(ctx) | {"stages": ctx.state.finished(), "wall_s": round(ctx.state.elapsed(), 1)}
    history = [r for r in read_jsonl(ctx.run_dir / "netadapt" / "netadapt.jsonl") if r.get("type") == "iteration"]
    device = ctx.prepared.device
    predicted = device.predict(ctx.final).ms
    measured = ctx.state.result("export", ExportStage).latency_ms  # ONNX Runtime, fp32: the `host` device's runtime
    backend = getattr(device, "backend", None)
    if backend is not None and ctx.config.device != "host":  # host-litert, :int8: time it as its table was
        from nas.latency.build import measure_specs  # deferred: loads torch

        measured = float(np.median(measure_specs([ctx.final], backend=backend)[0]))
    points, title = latency_points(ctx.config.device, device, ctx.final, measured, predicted)
    write_report(ctx.run_dir, summary, ctx.records, history, points, title, proxy_mapped=ctx.prepared.proxy.cheap)
    return ReportStage()


STAGES: list[Stage] = [
    ("supernet", run_supernet),   # --proxy supernet only: one weight-sharing supernet for the search
    ("search", run_search),
    ("select", run_select),
    ("netadapt", run_adapt),
    ("export", run_export),
    ("compare", run_compare),     # the final network and its equal-latency baselines
    ("deploy", run_deploy),       # final.tflite; int8 speed-up and accuracy drop
    ("report", run_report),
]


def run_result(summary: dict[str, Any], run_dir: Path) -> MemberStage:
    """What a run prints (--json), and a family keeps for each of its targets."""
    keys = [f.name for f in fields(MemberStage) if f.name not in ("seconds", "report", "run_dir")]
    return MemberStage(**{k: summary[k] for k in keys},
                       report=str(run_dir / "report.md"), run_dir=str(run_dir))


def summarize(ctx: Context) -> dict[str, Any]:
    """summary.json: the run's answer, from the stages' results and the final network."""
    config, run_dir, state = ctx.config, ctx.run_dir, ctx.state
    exp, adapted = state.result("export", ExportStage), state.result("netadapt", AdaptStage)
    compared, deployed = state.result("compare", CompareStage), state.result("deploy", DeployStage)
    final = compared.rows[0]
    pred = ctx.prepared.device.predict(ctx.final)
    return {
        "run": run_dir.name, "target_ms": config.target_ms, "device": config.device,
        "space": ctx.prepared.space.name, "proxy": ctx.prepared.proxy_name, "budget": ctx.budget.name,
        "seed": config.seed, "algorithm": config.algorithm, "reward": reward_name(config), "reward_w": ctx.reward_w,
        "final_spec": str(run_dir / "final.yaml"), "onnx": str(run_dir / "final.onnx"),
        "predicted_ms": round(pred.ms, 4), "predicted_p10_ms": round(pred.p10, 4),
        "predicted_p90_ms": round(pred.p90, 4), "measured_host_ms": exp.latency_ms,
        "max_abs_diff": exp.max_abs_diff, "netadapt_accuracy": adapted.accuracy,
        "params": exp.params, "macs": exp.macs, "samples": len(ctx.records),
        "netadapt_iterations": adapted.iterations, "block_strings": ctx.final.block_strings(),
        "arch": ctx.final.to_string(), "proxy_accuracy": final["accuracy_mean"], "proxy_accuracy_sd": final["accuracy_sd"],
        "accuracy_label": final.get("accuracy_label"), "accuracy_source": compared.accuracy_source,
        "comparison": compared.rows, "verdict": compared.verdict,
        "train_command": train_command(config, run_dir),
        "tflite": deployed.tflite if deployed else None, "deploy": state.done("deploy"),
    }


def train_command(config: RunConfig, run_dir: Path) -> str:
    """The command that trains the final network with MobileNetV3's recipe on the run's data set."""
    parts = ["python -m nas.train", str(run_dir / "final.yaml"), "--out", str(run_dir / "train")]
    if config.data:
        parts += ["--data", config.data, "--dataset", config.dataset]
    return " ".join(shlex.quote(p) if i else p for i, p in enumerate(parts))


def run_pipeline(config: RunConfig, run_dir: Path, resume: bool, prepared: Prepared) -> dict[str, Any]:
    """Every stage not yet done, then summary.json; returns the summary."""
    ctx = Context(config, run_dir, prepared, resume, RunState(run_dir / "pipeline.json", resume))
    p = prepared
    log.info(f"space {p.space.name} ({p.why}); device {config.device}; proxy {p.proxy_name}; "
             f"{ctx.samples} samples; {config.algorithm}, reward {reward_name(config)} w={ctx.reward_w:g}; run {run_dir}")
    run_stages(STAGES, ctx.state, ctx)
    summary = summarize(ctx) | {"wall_s": round(ctx.state.elapsed(), 1)}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1, sort_keys=True))
    return summary
