"""A search run's directory: where a new one goes, which one --resume means, and its config.yaml."""
from __future__ import annotations

import time
from pathlib import Path

import yaml

from nas.pipeline.run_config import RunConfig
from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write_text
from nas.runtime.paths import RUNS_DIR


def latest_run() -> Path:
    runs = sorted((p for p in RUNS_DIR.glob("*") if (p / "config.yaml").exists()), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UserError(f"no run to resume under {RUNS_DIR}", setting="resume")
    return runs[-1]


def default_run_dir(config: RunConfig) -> Path:
    device = Path(config.device).stem.replace(":", "-")  # host:int8 -> host-int8: portable folder names
    targets = "-".join(f"{t:g}" for t in config.targets)  # a family: 15-25-35-50ms
    return RUNS_DIR / time.strftime(f"{Path(str(config.space)).stem}-{targets}ms-{device}-%Y%m%d-%H%M%S")


def check_new_run_dir(run_dir: Path) -> None:
    """A new run's --out: a directory (or nothing yet) that does not already hold a run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError("exists and is not a directory", source=str(run_dir), setting="out")
    if (run_dir / "config.yaml").exists():
        raise UserError("already holds a run: add --resume to continue it, or choose another --out",
                        source=str(run_dir))


def create_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the run directory: {err.strerror or err}", source=str(run_dir),
                        setting="out") from None


def write_config(run_dir: Path, config: RunConfig) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=True))
