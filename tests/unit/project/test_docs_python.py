"""docs/python.md cannot drift: its settings table is the run config's keys and the command's flags,
its registry table lists every built-in name."""
from __future__ import annotations

import re
import nas
from nas.pipeline.run_config import CONFIG_KEYS, DEFAULTS
from nas.search.__main__ import parser
from helpers import ROOT

PAGE = ROOT / "docs" / "python.md"


def _table(header: str) -> list[list[str]]:
    lines = PAGE.read_text().split(header, 1)[1].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_the_settings_table_is_the_configs_keys_and_the_commands_flags():
    rows = _table("| setting | flag | default |")
    assert [r[0].strip("`") for r in rows] == list(CONFIG_KEYS)
    flags = {a.dest: a.option_strings for a in parser()._actions}
    for key, flag, default in rows:
        key = key.strip("`")
        if flag.startswith("`"):
            assert flag.strip("`") in flags[key], key
        else:
            assert key not in flags or not flags[key], key  # "config file only"
        if key in DEFAULTS and isinstance(DEFAULTS[key], (str, int)) and not isinstance(DEFAULTS[key], bool):
            assert default == f"`{DEFAULTS[key]}`", key


def test_the_registry_table_lists_every_built_in_name():
    rows = {r[0].strip("`"): r[1] for r in _table("| registry | built-in names | what is registered |")}
    assert set(rows) == {f"nas.{n}" for n in ("PROXIES", "DEVICES", "SPACES", "ALGORITHMS", "REWARDS", "BUDGETS")}
    for name, listed in rows.items():
        registry = getattr(nas, name.split(".")[1])
        assert re.sub(r"\s*\(and [^)]*\)", "", listed).split(", ") == list(registry), name


def test_every_public_name_resolves():
    missing = [name for name in nas.__all__ if getattr(nas, name, None) is None]
    assert missing == [] and callable(nas.search)
