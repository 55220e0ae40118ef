"""The documentation stands on its own: every relative link resolves inside the repository, the
README stays a short user's document, and nothing points to documents outside the repository."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import ROOT

DOCS = ROOT / "docs"
README_MAX_LINES = 260

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
# Documents that lived beside the checkout while it was built; the repository must not need them.
_OUTSIDE = re.compile(r"\b(?:DESIGN|REFERENCE)\.md\b|\.\./shared\b|\bshared/(?:DESIGN|REFERENCE)")


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _prose(text: str) -> str:
    """Markdown without code blocks and code spans: links there are examples, not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """Relative links of `page` (its text, or `text` as if it were there) that lead nowhere."""
    text = page.read_text(encoding="utf-8") if text is None else text
    problems = []
    for target in _LINK.findall(_prose(text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve()
        if ROOT not in (dest, *dest.parents):
            problems.append(f"{target}: outside the repository")
        elif path and not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and (not path or dest.suffix == ".md"):
            if anchor not in anchors(dest.read_text(encoding="utf-8") if path else text):
                problems.append(f"{target}: no such heading")
    return problems


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_a_broken_link_is_caught():
    text = ("# Title\n\n[ok](#title) [gone](nowhere.md) [bad anchor](#missing) `[code](x.md)`\n"
            "[out](../../../../etc/passwd) [ok](index.md) [bad](design.md#no-such-part) [web](https://x.org/a)\n"
            "```\n[fenced](y.md)\n```\n")
    found = [p.split(": ")[0] for p in broken_links(DOCS / "page.md", text)]
    assert found == ["nowhere.md", "#missing", "../../../../etc/passwd", "design.md#no-such-part"]


def test_slug_matches_github():
    assert slug("Proxy fidelity audit, N = 20") == "proxy-fidelity-audit-n--20"
    assert slug("Ctrl-C, SIGTERM, kill -9") == "ctrl-c-sigterm-kill--9"
    assert slug("The shipped `pixel1` device") == "the-shipped-pixel1-device"


def test_readme_is_short_and_states_the_test_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    for needed in ("make test", "make test-slow", ".venv/bin/python -m pytest", "python -m nas.search --target-ms 50"):
        assert needed in text, needed


def test_every_docs_page_is_listed_in_the_index():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    listed = {Path(t.partition("#")[0]).name for t in _LINK.findall(_prose(index))}
    assert {p.name for p in DOCS.glob("*.md")} - {"index.md"} <= listed


def _sources() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml"]
    for folder in ("nas", "docs", "tests", "experiments"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".yaml", ".txt", ".toml"}]
    return [p for p in files if p.is_file() and p != Path(__file__).resolve()]


def test_nothing_points_outside_the_repository():
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
            for p in _sources()
            for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if _OUTSIDE.search(line)]
    assert hits == []
