"""A family of targets from one training: `--target-ms 15,25,35,50`.

A family's directory holds its config.yaml (the list of targets) and family.json (its stages, as a
run's pipeline.json), then:

- with --proxy supernet, one supernet per space its targets search (`supernet-<space>/`, trained
  once; `auto` may pick MobileNetV3-Small for the low targets and -Large for the high ones), unless
  --supernet gives one;
- one ordinary run per target (`<target>ms/`: its own config.yaml with that target and the family's
  supernet, pipeline.json, final.yaml, final.onnx, report.md), so each resumes as a single run does;
- summary.json, report.md and family.png: the family against the width-scaled MobileNetV3 curve.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nas.budgets import get_budget
from nas.pipeline.prepare import Prepared, prepare
from nas.pipeline.results import MemberStage, ReportStage, SupernetStage
from nas.pipeline.run_config import RunConfig
from nas.pipeline.rundir import write_config
from nas.pipeline.runner import RunState, Stage, run_stages
from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write_text
from nas.runtime.lock import run_lock
from nas.supernet.supernet_proxy import SupernetProxy

log = logging.getLogger(__name__)


def member_dir(run_dir: Path, target_ms: float) -> Path:
    return run_dir / f"{target_ms:g}ms"


def supernet_stage(space_name: str) -> str:
    return f"supernet-{space_name}"


def prepare_family(config: RunConfig) -> list[Prepared]:
    """Every target's device, space, data and proxy, checked before anything is written."""
    prepared = []
    for t in config.targets:
        try:
            prepared.append(prepare(config.for_target(t, None)))
        except UserError as err:
            raise err.reworded(f"{err.message} (target {t:g} ms)") from None
    return prepared


@dataclass
class Family:
    config: RunConfig
    run_dir: Path
    prepared: list[Prepared]
    resume: bool
    state: RunState

    def shares_supernet(self) -> bool:
        # TuNAS's joint search trains each target's supernet with that target's reward: not shared
        return (isinstance(self.prepared[0].proxy, SupernetProxy) and not self.config.supernet
                and self.config.algorithm != "tunas")

    def spaces(self) -> dict[str, Prepared]:
        """The distinct spaces the targets search, each with the first target's preparation."""
        found: dict[str, Prepared] = {}
        for p in self.prepared:
            found.setdefault(p.space.name, p)
        return found


def train_supernet_stage(name: str, p: Prepared):
    def stage(family: Family) -> SupernetStage:
        from nas.pipeline.stages import train_run_supernet  # deferred: loads numpy

        config = family.config
        space = p.space.name if config.space == "auto" else config.space  # a file's path, or a built-in's name
        out = family.run_dir / supernet_stage(name)
        result = train_run_supernet(space, p.data, out, get_budget(config.budget), config.seed)
        users = [t for t, q in zip(config.targets, family.prepared) if q.space.name == name]
        return replace(result, space=name, targets=users)
    return stage


def member_stage(i: int):
    def stage(family: Family) -> MemberStage:
        from nas.pipeline.stages import run_pipeline, run_result  # deferred: loads numpy

        config, p = family.config, family.prepared[i]
        t = config.targets[i]
        supernet = None
        if family.shares_supernet():
            supernet = family.state.result(supernet_stage(p.space.name), SupernetStage).checkpoint
        member = config.for_target(t, supernet)
        out = member_dir(family.run_dir, t)
        resume = (out / "config.yaml").exists()  # started in an earlier run of the family: continue it
        log.info("family: target %g ms (%d of %d) in %s", t, i + 1, len(config.targets), out)
        with run_lock(out, what="search run (a family member)"):
            if not resume:
                write_config(out, member)
            summary = run_pipeline(member, out, resume=resume, prepared=p)
        return run_result(summary, out)
    return stage


def report_stage(family: Family) -> ReportStage:
    from nas.export.family_report import write_family_report  # deferred: loads scipy

    members = [family.state.done(f"{t:g}ms") for t in family.config.targets]
    supernets = supernets_of(family)
    report, plot = write_family_report(family.run_dir, family.config.device, members, supernets)
    return ReportStage(report=str(report), plot=str(plot))


def supernets_of(family: Family) -> list[dict[str, Any]]:
    return [family.state.done(supernet_stage(name)) for name in family.spaces()
            if family.state.done(supernet_stage(name))]


def stages_of(family: Family) -> list[Stage]:
    supernets = [(supernet_stage(name), train_supernet_stage(name, p)) for name, p in family.spaces().items()
                 ] if family.shares_supernet() else []
    members = [(f"{t:g}ms", member_stage(i)) for i, t in enumerate(family.config.targets)]
    return [*supernets, *members, ("report", report_stage)]


def run_family(config: RunConfig, run_dir: Path, resume: bool, prepared: list[Prepared]) -> dict[str, Any]:
    """Every family stage not yet done, then summary.json; returns what --json prints."""
    state = RunState(run_dir / "family.json", resume)
    family = Family(config, run_dir, prepared, resume, state)
    log.info(f"family of {len(config.targets)} targets ({', '.join(f'{t:g}' for t in config.targets)} ms) on "
             f"{config.device}; spaces {', '.join(family.spaces())}; run {run_dir}")
    run_stages(stages_of(family), state, family)
    done = state.result("report", ReportStage)
    result = {
        "targets": list(config.targets), "device": config.device, "budget": config.budget,
        "family": [state.result(f"{t:g}ms", MemberStage).printed() for t in config.targets],
        "supernets": supernets_of(family), "report": done.report, "plot": done.plot, "run_dir": str(run_dir),
        "wall_s": round(state.elapsed(), 1),
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(result, indent=1, sort_keys=True))
    return result
