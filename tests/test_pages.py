"""The README, the contributor guide, the changelog and the documentation pages: every relative link
points to a file that exists (and, into a Markdown page, to a heading it has), links from the site's
pages stay inside ``docs/`` (what MkDocs can serve), and what the pages say about the code is true of it
(every error class is in the errors table; the exit code of an unreadable image)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from .helpers import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(path: Path) -> str:
    """The page without its code blocks (a ``[x](y)`` inside code is not a link)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def _slug(heading: str) -> str:
    """The anchor MkDocs (and GitHub) give a heading: lower case, code marks and punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return re.sub(r"\s", "-", text)


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", _prose(path), re.M)}


def _links(path: Path) -> list[str]:
    return [a or b for a, b in LINK.findall(_prose(path))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in _links(page):
        if re.match(r"[a-z]+:", link):  # http(s):, mailto:
            continue
        target, _, anchor = link.partition("#")
        file = (page.parent / unquote(target)).resolve() if target else page
        if not file.exists():
            broken.append(f"{link}: no such file")
            continue
        if DOCS in page.parents and DOCS not in file.parents:
            broken.append(f"{link}: outside docs/ (the site cannot serve it; write the path as code)")
        if anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{link}: no heading '{anchor}' in {file.relative_to(REPO)}")
    assert not broken, broken


def test_the_link_checker_sees_links_and_headings() -> None:
    links = _links(REPO / "README.md")
    assert "docs/zoo.md" in links and "docs/app.png" in links
    assert "class-definitions" in _anchors(DOCS / "classifying.md")
    assert _slug("Models and `.npy` files") == "models-and-npy-files"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_pages_speak_to_users(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text and "/work/shared" not in text
    assert not re.search(r"\bissues? #?\d+|\(#\d+\)", text, re.I), "issue numbers mean nothing to a user"
    assert not re.search(r"before this change|this session|the integrator", text, re.I)


def test_the_errors_page_lists_every_error() -> None:
    import zeromamba
    from zeromamba import errors

    table = (DOCS / "errors.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    classes = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.ZeroMambaError) and obj is not errors.ZeroMambaError
    }
    assert classes <= rows, f"not in docs/errors.md: {sorted(classes - rows)}"
    assert rows <= set(zeromamba.__all__), f"not public: {sorted(rows - set(zeromamba.__all__))}"


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:\n", 1)[1]
    listed = set(re.findall(r"([\w/.-]+\.md)\s*$", nav, re.M))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "hooks" not in p.parts}
    assert pages <= listed, sorted(pages - listed)
