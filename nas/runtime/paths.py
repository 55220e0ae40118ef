"""Where things live: the built-in data the package ships, a run's default folder, the user cache.

Built-in spaces, reference specs and device tables are package data (nas/data/, read through
importlib.resources), so an installed wheel finds them wherever it runs; in the repository the
top-level search_spaces/ and latency_tables/ are links to the same folders. Nothing is written
into the package: runs go under the current directory, per-machine tables into the user cache.
"""
from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from nas.runtime.errors import UserError

# The package's data folder as a real directory: installs (wheel or editable) unpack it on disk.
DATA_ROOT = Path(str(resources.files("nas").joinpath("data")))
SPACES_DIR = DATA_ROOT / "search_spaces"
REFERENCE_DIR = SPACES_DIR / "reference"
TABLES_DIR = DATA_ROOT / "latency_tables"  # shipped device models: read-only

# The repository root, meaningful only in a checkout (where an installed wheel has site-packages).
ROOT = Path(__file__).resolve().parents[2]

# Relative on purpose: resolved against the directory a command runs in.
RUNS_DIR = Path("runs")
USER_TABLES_DIR = Path("latency_tables")  # devices a user imports or calibrates (`--device NAME`)



def path_slug(text: str, limit: int = 80) -> str:
    """`text` (a network's name, a device's: data from a file) made safe as one path component:
    letters, digits, '.', '_' and '-' only, no leading dot, at most `limit` characters."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).lstrip(".")[:limit]
    return slug or "_"


CACHE_ENV = "NAS_CACHE_DIR"
APP_NAME = "nas-mobilenetv3"


def cache_dir() -> Path:
    """Per-user cache (host tables): $NAS_CACHE_DIR, else $XDG_CACHE_HOME/nas-mobilenetv3, else
    ~/.cache/nas-mobilenetv3. Read at each call, so a test or CI job can point it elsewhere."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / APP_NAME


def builtin_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def resolve_builtin(name_or_path: str | os.PathLike, folder: Path, what: str) -> Path:
    """The path as given, or `folder/<name>.yaml` for a bare name that is not a file here; an
    unknown name is one error that lists the built-in names."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix or path.exists() or os.sep in text:
        return path
    builtin = folder / f"{text}.yaml"
    if not builtin.is_file():
        raise UserError(f"unknown {what} {text!r} (built-in: {', '.join(builtin_names(folder))}; "
                        f"or a path to a YAML file)")
    return builtin
