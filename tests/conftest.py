import os
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # `import helpers` from every test folder
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Host tables live in the user cache: every test (and the commands it starts) gets a throwaway one,
# never the real ~/.cache/nas-mobilenetv3 nor whatever NAS_CACHE_DIR the shell had.
_CACHE = tempfile.TemporaryDirectory(prefix="nas-test-cache-")
os.environ["NAS_CACHE_DIR"] = _CACHE.name

from helpers import REFERENCE  # noqa: E402
from helpers.data import fashion_mnist  # noqa: E402,F401 (session fixture every suite may ask for)


SUITES = ("unit", "integration", "slow")  # tests/<suite>/<folder>/test_*.py (tests/README.md)


def pytest_collection_modifyitems(items):
    """The `unit` / `integration` / `slow` markers come from the first folder under tests/."""
    for item in items:
        suite = Path(item.path).resolve().relative_to(TESTS).parts[0]
        if suite in SUITES:
            item.add_marker(suite)


@pytest.fixture
def reference_dir() -> Path:
    return REFERENCE


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With NAS_TEST_NO_SKIPS=1 (CI) a skipped test fails: nothing may pass by not running."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("NAS_TEST_NO_SKIPS") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped where every test must run (NAS_TEST_NO_SKIPS=1): {reason}"
