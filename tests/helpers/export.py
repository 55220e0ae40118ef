"""What the export suites share: the tiny spec at the proxy's size, as a file; a command's --json line."""
import json
from dataclasses import replace

import pytest

from helpers.data import TINY
from nas.core.spec import save_spec

SMALL = replace(TINY, resolution=32, num_classes=10)


@pytest.fixture
def spec_file(tmp_path):
    """SMALL saved as tmp_path/tiny.yaml."""
    path = tmp_path / "tiny.yaml"
    save_spec(SMALL, path)
    return path


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def files(folder) -> list[str]:
    """The names of every file under `folder`, sorted."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file())
