"""OUT/supernet.pt: a supernet training's checkpoint, written whole after every epoch and read back
(by a resumed training, a Ray worker, the proxy that scores with it).

Apart from nas.supernet.supernet_run, so that its Ray workers (nas.supernet.supernet_on_ray) read and write the
same file without importing the run that starts them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.runtime.errors import UserError
from nas.runtime.files import save_state

CHECKPOINT = "supernet.pt"
FORMAT = 1


def save_checkpoint(training, out: Path, identity: dict[str, Any], space: str, data: dict[str, Any]) -> None:
    """OUT/supernet.pt, replaced whole: the training's state and what it was made from."""
    save_state({"format": FORMAT, "kind": "supernet", "identity": identity, "space_source": space, "data": data,
                **training.state_dict()}, Path(out) / CHECKPOINT)


def read_checkpoint(path: Path, setting: str = "supernet") -> dict[str, Any]:
    """A supernet checkpoint on the CPU; a missing, damaged or foreign file is one line naming it."""
    import torch  # deferred: torch (~2 s); the commands' flag errors answer before it loads

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise UserError(f"no supernet here ({CHECKPOINT})", source=str(path), setting=setting)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or truncated file
        raise UserError(f"cannot load the supernet: {err.__class__.__name__}", source=str(path),
                        setting=setting) from None
    if not isinstance(state, dict) or state.get("kind") != "supernet" or state.get("format") != FORMAT:
        raise UserError("not a supernet of `python -m nas.supernet train`", source=str(path), setting=setting)
    return state
