"""The documentation holds together: every relative link resolves, every `make` target it names
exists, and the README and the pages under docs/ link to each other."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MAKE = re.compile(r"`make ([a-z][a-z0-9-]*)")


def _markdown() -> list[Path]:
    files = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True)
    tracked = {REPO / f for f in files.stdout.split()}
    untracked = {p for p in (REPO / "docs").glob("*.md")} | {REPO / "README.md"}  # new pages before a commit
    return sorted(p for p in tracked | untracked if p.exists())


DOCS = _markdown()


def _targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # web links and anchors within the page
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_named_make_targets_exist(doc: Path) -> None:
    missing = sorted(set(MAKE.findall(doc.read_text())) - _targets())
    assert missing == []


def test_readme_and_pages_link_both_ways() -> None:
    readme = (REPO / "README.md").read_text()
    pages = sorted((REPO / "docs").glob("*.md"))
    assert len(pages) >= 8
    for page in pages:
        assert f"](docs/{page.name})" in readme, page.name
        assert "](../README.md)" in page.read_text(), page.name
    assert len(readme.splitlines()) < 150


def test_the_checks_find_links_and_targets() -> None:
    """A pattern that matched nothing would pass the tests above on any text."""
    readme = (REPO / "README.md").read_text()
    assert len(LINK.findall(readme)) >= 8 and {"serve", "test"} <= set(MAKE.findall(readme))
    assert {"serve", "test", "load", "bench-generator"} <= _targets()


def test_make_help_lists_every_target_in_words() -> None:
    """Every phony target (digits in the name too: k8s-render) is in `make help` with a description."""
    text = (REPO / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY: (.*)$", text, re.M).group(1).split())  # type: ignore[union-attr]
    described = set(re.findall(r"^([a-z][a-z0-9-]*):.*## \S", text, re.M))
    assert phony == described
    shown = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    listed = {line.split()[0] for line in shown.splitlines() if line.startswith("  ") and not line.startswith("   ")}
    assert listed == phony, sorted(listed ^ phony)
    assert all(len(line) <= 110 for line in shown.splitlines())  # wrapped, not overflowing the column
