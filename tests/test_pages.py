"""The README, the contributor guide, the changelog and the documentation pages: every relative link
points to a file that exists (and, into a Markdown page, to a heading it has), links from the site's
pages stay inside ``docs/`` (what MkDocs can serve), and what the pages say about the code is true of it
(every error class is in the errors table; the exit code of an unreadable image). No file of the
repository refers to tracker issue numbers, the development machine's folders or how the code was
worked on: a reader has none of them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from .helpers import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
# What means nothing to a user: tracker issue numbers (REFERENCES below shows the forms), the
# development machine's shared folders, notes on how the work went. The brackets keep these lines
# from matching themselves.
OFF_LIMITS = re.compile(
    r"(?<![a-z])issues?[ _#-]?\d|[(]issue|[(]#\d+[)]|[.][.]/share[d]\b|/work/share[d]|\bshare[d]/"
    r"|the issue(?:'[s]| ask[s])\b|(?:this|previous|last) sessio[n]\b|the integrato[r]|before this chang[e]",
    re.I,
)
# examples of each form; test_the_reference_check_sees_references checks that all are caught, and the
# scan of this file passes over them
REFERENCES = (
    "the model shipped before issue 13",
    "Atomic writes (issue 21): a writer",
    "Issue 5's floors were CZSL >= 85%",
    "see issue-7 and issues #8",
    "benchmarks/results/ab_forward_issue22.json",
    "fixed in (#12)",
    "copied from ../shared/fixtures/official",
    "read /work/shared/docs/vim-reference.md",
    "measured the same way by the previous session",
    "Tried in this session, each measured",
    "meets the issue's floor (pointing at least 90%)",
)
# the text files of the repository: code, pages, configuration, results
SCANNED = {".py", ".md", ".toml", ".yml", ".yaml", ".json", ".sh", ".c", ".h", ".cfg", ".txt", ".js", ".css", ".html"}


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
    found = _references(page.read_text(encoding="utf-8"))
    assert not found, [f"{page.relative_to(REPO)}:{line}: {text}" for line, text in found]


def _references(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of every line of ``text`` that :data:`OFF_LIMITS` matches."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if OFF_LIMITS.search(line)]


def _tracked_files() -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"not a git checkout, or no git: the tracked files are unknown ({e})")
    return [name for name in listed.stdout.decode("utf-8").split("\0") if name]


def test_no_file_refers_to_issues_or_the_development_machine() -> None:
    offenders = []
    for name in _tracked_files():
        path = REPO / name
        if OFF_LIMITS.search(name):
            offenders.append(f"{name}: the file's name")
        if path.suffix not in SCANNED or not path.is_file():  # a file deleted but not yet staged
            continue
        found = _references(path.read_text(encoding="utf-8", errors="replace"))
        if path.resolve() == Path(__file__).resolve():
            found = [(line, content) for line, content in found if content.strip('",') not in REFERENCES]
        offenders += [f"{name}:{line}: {content[:120]}" for line, content in found]
    assert not offenders, "\n".join(["say what is meant instead of referring to:", *offenders])


@pytest.mark.parametrize("text", REFERENCES)
def test_the_reference_check_sees_references(text: str) -> None:
    assert _references(f"a first line\n{text}\n") == [(2, text)]


def test_the_reference_check_lets_plain_text_through() -> None:
    text = "tissue 3, colour #1e90ff, a manifest on shared storage (/mnt/nfs/list.parquet), session 4, issues"
    assert _references(text) == []


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
