"""The tests mirror the package (tests/README.md): tests/<suite>/<folder>/test_*.py, where the suite is
unit, integration or slow and the folder is a part of `nas` or one of the documented extra folders."""
from __future__ import annotations

from collections import Counter

from helpers import ROOT, TESTS

SUITES = {"unit", "integration", "slow"}
EXTRA = {"project"}  # checks across the whole project (tests/README.md)
SHARED = {"helpers", "data"}


def _nas_parts() -> set[str]:
    """What may follow `nas.`: every subpackage and every top-level module."""
    nas = ROOT / "nas"
    packages = {p.name for p in nas.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in nas.glob("*.py") if not p.stem.startswith("_")}
    return packages | modules


def _test_files() -> list:
    return sorted(p.relative_to(TESTS) for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts)


def test_every_test_file_is_in_a_suite_and_a_folder_named_after_what_it_tests():
    allowed = _nas_parts() | EXTRA
    misplaced = [str(p) for p in _test_files()
                 if len(p.parts) != 3 or p.parts[0] not in SUITES or p.parts[1] not in allowed]
    assert misplaced == [], f"move these to tests/{{unit,integration,slow}}/<folder>/ (tests/README.md): {misplaced}"


def test_the_top_of_tests_holds_only_the_suites_and_what_they_share():
    entries = {p.name for p in TESTS.iterdir() if p.name != "__pycache__" and not p.name.startswith(".")}
    assert entries <= SUITES | SHARED | {"conftest.py", "README.md"}, entries


def test_test_file_names_are_unique():
    """pytest's default import mode imports each test file by its name alone."""
    counts = Counter(p.name for p in _test_files())
    assert [name for name, n in counts.items() if n > 1] == []


def test_the_extra_folders_are_not_names_in_the_package():
    assert EXTRA.isdisjoint(_nas_parts())
