"""Where the repository keeps its data files (spaces, reference specs, latency tables, runs)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPACES_DIR = ROOT / "search_spaces"
REFERENCE_DIR = SPACES_DIR / "reference"
TABLES_DIR = ROOT / "latency_tables"
RUNS_DIR = ROOT / "experiments" / "runs"
