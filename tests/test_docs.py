"""The README stays a newcomer's page and its links into docs/ hold: every relative link of README.md and
docs/*.md names a file that exists and, where it has one, a heading of that file (GitHub's anchors)."""
from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped but hyphens, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(page):
    fence, out = False, set()
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#+ ", line):
            out.add(anchor(line.lstrip("#")))
    return out


def test_anchor_rule():
    assert anchor("`make submit PRESET=cpu` from nothing (2026-11-26, `out/cpu8`)") == \
        "make-submit-presetcpu-from-nothing-2026-11-26-outcpu8"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_links_resolve(page):
    for target, frag in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path = (page.parent / target) if target else page
        assert path.exists(), f"{page.name}: link to {target}, which does not exist"
        if frag and path.suffix == ".md":
            assert frag in headings(path), f"{page.name}: link to {target}#{frag}, no such heading"


def test_readme_is_short_and_points_to_the_evidence():
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 220
    for doc in ("runs", "choices", "gpu", "benchmark", "mosaic", "suite"):
        assert f"(docs/{doc}.md)" in text
