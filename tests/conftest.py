import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import helpers` from tests/unit and tests/integration
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Host tables live in the user cache: every test (and the commands it starts) gets a throwaway one,
# never the real ~/.cache/nas-mobilenetv3 nor whatever NAS_CACHE_DIR the shell had.
_CACHE = tempfile.TemporaryDirectory(prefix="nas-test-cache-")
os.environ["NAS_CACHE_DIR"] = _CACHE.name

from helpers import REFERENCE  # noqa: E402


@pytest.fixture
def reference_dir() -> Path:
    return REFERENCE
