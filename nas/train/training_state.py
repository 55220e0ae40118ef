"""A training's directory: its per-epoch checkpoint, and the settings a resumed run must share with it.

The checkpoint (OUT/checkpoint.pt) holds the model, its EMA, the optimizer, the schedule, the RNG
states, the epoch and step, the data-order seed and the settings (`identity`) it was made with. It
is replaced whole after every epoch (nas.runtime.files.atomic_write), so a run killed at any moment
resumes from its last finished epoch.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

from nas.runtime.errors import UserError
from nas.runtime.files import save_state

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
SPEC = "spec.yaml"
ONNX = "model.onnx"
TFLITE = "model.tflite"
SUMMARY = "train.json"
FORMAT = 1


def file_digest(path: str | Path) -> str:
    """A short content hash of a file (an --init weights file is part of a training's identity)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as err:
        raise UserError(f"cannot read: {err.strerror or err}", source=str(path), setting="init") from None
    return h.hexdigest()[:16]


def save_checkpoint(out: Path, state: Mapping[str, Any]) -> Path:
    path = Path(out) / CHECKPOINT
    save_state({"format": FORMAT, **state}, path)
    return path


def load_checkpoint(out: Path) -> dict[str, Any]:
    """The whole checkpoint in OUT, on the CPU; a missing or damaged one is a one-line UserError."""
    import torch  # deferred: torch takes ~2 s to load

    path = Path(out) / CHECKPOINT
    if not path.is_file():
        raise UserError(f"nothing to resume: no {CHECKPOINT} here", source=str(out), setting="resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or truncated file
        raise UserError(f"cannot load the checkpoint: {err.__class__.__name__}", source=str(path)) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "identity" not in state:
        raise UserError("not a checkpoint of `python -m nas.train`", source=str(path))
    return state


def check_identity(saved: Mapping[str, Any], now: Mapping[str, Any], source: str) -> None:
    """Refuse to resume a training made with other settings, naming the first that differs."""
    for key in [*now, *(k for k in saved if k not in now)]:
        if saved.get(key) != now.get(key):
            raise UserError(f"the checkpoint was made with {saved.get(key)!r}, this run has {now.get(key)!r}: "
                            f"resume with the same settings, or train into another --out", source=source, field=key)
