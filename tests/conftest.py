import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import helpers` from tests/unit and tests/integration
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from helpers import REFERENCE  # noqa: E402


@pytest.fixture
def reference_dir() -> Path:
    return REFERENCE
