"""The documentation site: the API reference covers ``zeromamba.__all__``, the command-line page
is generated from the parsers, and ``mkdocs build --strict`` (broken links and references fail it)
builds the site."""

from __future__ import annotations

import importlib.util
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import REPO

DOCS = REPO / "docs"
DIRECTIVE = re.compile(r"^::: (zeromamba(?:\.\w+)*)\s*$", re.M)


def _documented_paths() -> list[str]:
    return [p for page in sorted((DOCS / "api").glob("*.md")) for p in DIRECTIVE.findall(page.read_text("utf-8"))]


def test_the_api_reference_documents_every_public_name() -> None:
    import zeromamba

    paths = _documented_paths()
    by_name: dict[str, list[str]] = {}
    for path in paths:
        by_name.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    missing = [name for name in zeromamba.__all__ if name not in by_name]
    assert not missing, f"no '::: zeromamba...' directive in docs/api/ for {missing}"
    for name in zeromamba.__all__:
        public = getattr(zeromamba, name)
        documented = [pkgutil.resolve_name(p) for p in by_name[name]]
        # the page shows the object users get, not a namesake
        assert any(d is public or d == public for d in documented), (name, by_name[name])


def test_the_command_line_page_covers_every_command() -> None:
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks" / "cli_reference.py")
        assert spec and spec.loader
        hook = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(hook)
    finally:
        sys.path.pop(0)
    from zeromamba.cli import COMMANDS, build_parser

    page = (DOCS / "cli.md").read_text("utf-8")
    assert hook.MARKER in page
    text = hook.cli_reference()
    for name in COMMANDS:
        assert f"## zeromamba {name}\n" in text
        # every option of every command is in its section
        section = text.split(f"## zeromamba {name}\n", 1)[1].split("\n## zeromamba ", 1)[0]
        parser = build_parser(name)
        sub = next(a for a in parser._actions if a.dest == "command").choices[name]
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in section, (name, flag)


def _mkdocs_missing() -> str | None:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            return f"needs {module} (pip install -e '.[docs]')"
    return None


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    reason = _mkdocs_missing()
    if reason and os.environ.get("ZEROMAMBA_REQUIRE_DOCS") == "1":
        pytest.fail(f"the documentation build is required here (ZEROMAMBA_REQUIRE_DOCS=1) but it {reason}")
    if reason:
        pytest.skip(reason)
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    site = tmp_path / "site"
    for page in DOCS.rglob("*.md"):
        if "hooks" in page.relative_to(DOCS).parts:
            continue
        rel = page.relative_to(DOCS).with_suffix("")
        html = site / (rel.parent if rel.name == "index" else rel) / "index.html"
        assert html.is_file(), f"{page.relative_to(REPO)} was not built ({html.relative_to(site)} missing)"
    api = (site / "api" / "predictor" / "index.html").read_text("utf-8")
    assert "classify" in api and "from_pretrained" in api  # the docstrings reached the page
    cli = (site / "cli" / "index.html").read_text("utf-8")
    assert "zeromamba classify" in cli and "--output" in cli


def _roles_extension() -> Any:
    spec = importlib.util.spec_from_file_location("griffe_roles", DOCS / "hooks" / "griffe_roles.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_roles_become_checked_links(caplog: pytest.LogCaptureFixture) -> None:
    griffe = pytest.importorskip("griffe")
    roles = _roles_extension()
    package = griffe.load(
        "zeromamba", search_paths=[str(REPO)], extensions=griffe.load_extensions(roles.SphinxRolesAsCode)
    )
    classify = package["predictor.Predictor.classify"].docstring.value
    # a role naming a documented object links to it (lazy package attributes resolved to their home)
    assert ":class:`" not in classify and '<autoref identifier="zeromamba.' in classify
    obj = package["predictor.Predictor"]
    cases = {
        # a lazy attribute of the package: linked to where the function lives
        ":func:`~zeromamba.load_model`": ('<autoref identifier="zeromamba.hub.', "<code>load_model</code>"),
        ":meth:`classify`": ('<autoref identifier="zeromamba.predictor.Predictor.classify" optional>',),
        ":class:`torch.Tensor`": ("<code>torch.Tensor</code>",),
    }
    for role, wants in cases.items():
        out = roles.ROLE.sub(lambda m: roles.SphinxRolesAsCode()._replace(obj, m), role)
        assert all(w in out for w in wants), (role, out)
    with caplog.at_level("WARNING"):
        out = roles.ROLE.sub(lambda m: roles.SphinxRolesAsCode()._replace(obj, m), ":func:`zeromamba.no_such_thing`")
    assert out == "<code>zeromamba.no_such_thing</code>"
    assert "zeromamba.no_such_thing, which does not exist" in caplog.text
