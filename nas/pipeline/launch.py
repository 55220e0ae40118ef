"""A run from its checked config to its answer, in its run directory: what the command and the
Python API both do (inputs checked before anything is written, the lock, config.yaml, the stages)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.pipeline.family import prepare_family, run_family
from nas.pipeline.prepare import limit_local_cpus, prepare
from nas.pipeline.run_config import RunConfig
from nas.pipeline.rundir import check_new_run_dir, create_run_dir, write_config
from nas.pipeline.stages import run_pipeline
from nas.runtime.cli import set_resume_hint
from nas.runtime.lock import run_lock


def launch(config: RunConfig, run_dir: Path, resume: bool, hint: str | None = None) -> dict[str, Any]:
    """Every stage not yet done: the summary (a family's result for several targets). `hint` is
    the command that resumes the run, shown if it is interrupted or its directory is locked."""
    limit_local_cpus(config)
    # nothing is written before the inputs check out: for a family, those of every target
    prepared = prepare_family(config) if config.is_family else prepare(config)
    if not resume:
        create_run_dir(run_dir)
    locked = f"once it has stopped, continue with: {hint}" if hint else None
    with run_lock(run_dir, what="search run", resume_hint=locked):
        if not resume:
            check_new_run_dir(run_dir)  # again, under the lock: a run that started meanwhile
            write_config(run_dir, config)
        if hint:
            set_resume_hint(hint)
        if config.is_family:
            return run_family(config, run_dir, resume=resume, prepared=prepared)
        return run_pipeline(config, run_dir, resume=resume, prepared=prepared)
