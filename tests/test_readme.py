"""The README's and the documentation's examples, run as written (offline), so that neither can drift
from the code. Every code block of the README is run: Python blocks preceded by
``<!-- readme-example ... -->`` in order in one namespace, bash blocks so marked line by line with the
installed command, and the Quick start block by CI (``.ci/run`` holds its lines verbatim) and here (its
``zeromamba demo``). In the documentation pages, blocks preceded by ``<!-- docs-example ... -->`` run
the same way, one namespace per page. They run in a folder that holds nothing but what a clone has:
``examples/`` and ``tests/fixtures/`` (linked, never written). The files and attribute names the pages
show are compared with the shipped ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

from .helpers import REPO

README_LINE_LIMIT = 160
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SHOWN_FILE = re.compile(r"<!-- shown-file: (\S+) -->\s*```\w*\n(.*?)```", re.S)
# the documentation pages with runnable examples, and what each must contain
DOCS_PAGES = ("getting-started.md", "classifying.md", "timm-and-vim.md", "export.md", "command-line.md")


def _text(name: str) -> str:
    return (REPO / name).read_text(encoding="utf-8")


def marked_blocks(text: str, marker: str, language: str) -> list[str]:
    """The ``language`` code blocks right after a ``<!-- marker ... -->`` comment, in order."""
    return re.findall(rf"<!-- {marker}[^>]*-->\s*```{language}\n(.*?)```", text, re.S)


def command_lines(blocks: list[str]) -> list[str]:
    return [ln for b in blocks for ln in b.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def readme_examples() -> list[str]:
    return marked_blocks(_text("README.md"), "readme-example", "python")


def readme_command_lines() -> list[str]:
    return command_lines(marked_blocks(_text("README.md"), "readme-example", "bash"))


def docs_examples(page: str) -> list[str]:
    return marked_blocks(_text(f"docs/{page}"), "docs-example", "python")


def docs_command_lines(page: str) -> list[str]:
    return command_lines(marked_blocks(_text(f"docs/{page}"), "docs-example", "bash"))


def clone_like_folder(tmp_path: Path) -> Path:
    """A working folder holding what a fresh clone has for the examples: ``examples/`` and
    ``tests/fixtures/``, linked to the repository's own."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    (tmp_path / "tests" / "fixtures").symlink_to(REPO / "tests" / "fixtures", target_is_directory=True)
    return tmp_path


def _quick_start_block() -> str:
    block = re.search(r"## Quick start\n.*?```bash\n(.*?)```", _text("README.md"), re.S)
    assert block is not None
    return block.group(1)


def _quick_start_commands() -> list[str]:
    """The command lines of the README's Quick start block (comments left out)."""
    return [line for line in _quick_start_block().splitlines() if line.strip() and not line.startswith("#")]


def _demo_command() -> str:
    """The demo of the Quick start's first line (after its install steps)."""
    line = next(c for c in _quick_start_commands() if c.endswith("zeromamba demo"))
    return line.split("&&")[-1].strip()


def test_the_readme_is_short() -> None:
    lines = _text("README.md").splitlines()
    assert len(lines) <= README_LINE_LIMIT, f"README.md has {len(lines)} lines; the rest belongs in docs/"


def test_every_readme_code_block_is_run() -> None:
    """Each fenced block is the Quick start (run by CI and, its demo, here) or a marked example."""
    text = _text("README.md")
    blocks = [body for _, body in FENCE.findall(text)]
    run = readme_examples() + marked_blocks(text, "readme-example", "bash") + [_quick_start_block()]
    assert blocks and all(b in run for b in blocks), [b for b in blocks if b not in run]
    assert len(readme_examples()) == 1 and len(marked_blocks(text, "readme-example", "bash")) == 1


def test_the_examples_name_only_files_a_clone_has() -> None:
    examples = readme_examples() + readme_command_lines()
    for page in DOCS_PAGES:
        examples += docs_examples(page) + docs_command_lines(page)
    named = set(re.findall(r"(?:examples|tests/fixtures)/[\w./-]+\.\w+", "\n".join(examples)))
    assert {"examples/images/circle.png", "examples/my_classes.csv", "examples/my_classes.json"} <= named
    assert all((REPO / n).is_file() for n in named), sorted(n for n in named if not (REPO / n).is_file())


def test_the_pages_show_the_shipped_files() -> None:
    shown = SHOWN_FILE.findall(_text("docs/classifying.md"))
    assert {name for name, _ in shown} == {"examples/my_classes.csv", "examples/my_classes.json"}
    for name, body in shown:
        assert body == (REPO / name).read_text(encoding="utf-8"), name  # byte for byte
    json.loads(_text("examples/my_classes.json"))


def test_the_readme_shows_the_shipped_models_attribute_names() -> None:
    shipped = json.loads(_text("zeromamba/pretrained/shapes-zsl/config.json"))
    block = re.search(r"<!-- readme-attribute-names -->\s*\n(.*?)\n\n", _text("README.md"), re.S)
    assert block is not None
    assert re.findall(r"`([^`]+)`", block.group(1)) == shipped["attribute_names"]


def test_the_examples_are_marked() -> None:
    assert "from_pretrained" in readme_examples()[0]
    assert len(readme_command_lines()) >= 3
    for page in DOCS_PAGES:
        assert docs_examples(page) or docs_command_lines(page), page
    assert any("timm.create_model" in b for b in docs_examples("timm-and-vim.md"))


def test_ci_runs_the_readme_test_commands_as_written() -> None:
    commands = _quick_start_commands()
    install = next(c for c in commands if '".[test]"' in c)
    runs = [c for c in commands if c.startswith("python -m pytest")]
    assert runs == ['python -m pytest -q -m "not slow"', "python -m pytest -q"]  # the fast run, the full one
    ci = _text(".ci/run").splitlines()
    assert install in ci and runs[1] in ci  # verbatim, as whole lines
    assert ci.index(install) < ci.index(runs[1])
    assert _demo_command() == "zeromamba demo"
    # the contributor guide says what CI adds and what a plain run skips
    text = _text("CONTRIBUTING.md")
    assert "ZEROMAMBA_REQUIRE_BROWSER=1" in text and "skipped" in text and "test_app_browser.py" in text
    assert "ZEROMAMBA_REQUIRE_RAY=1" in text and ".ci/run" in text


def _run_blocks(blocks: list[str], source: str) -> dict:
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, source, "exec"), namespace)  # noqa: S102 - the page's own code
    return namespace


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(clone_like_folder(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.mark.slow
def test_readme_examples_run(clone: Path) -> None:
    namespace = _run_blocks(readme_examples(), "README.md")
    assert namespace["result"].label == "red solid circle"
    assert [r.label for r in namespace["results"]] == ["round red thing", "blue striped bar"]
    assert [r.label for r in namespace["named"]] == ["red disc", "blue bar"]
    assert dict(namespace["attrs"].top(3)).keys() == {"circle", "red", "solid"}
    assert Path("why.png").stat().st_size > 0


@pytest.mark.slow
def test_the_pages_python_examples_run(clone: Path) -> None:
    start = _run_blocks(docs_examples("getting-started.md"), "docs/getting-started.md")
    assert start["result"].label == "blue striped bar"

    classifying = _run_blocks(docs_examples("classifying.md"), "docs/classifying.md")
    assert [r.label for r in classifying["results"]] == ["round red thing", "blue striped bar"]
    assert [r.label for r in classifying["named"]] == ["red disc", "blue bar"]
    assert Path("why.png").stat().st_size > 0 and Path("my-model/config.json").is_file()
    # calling the predictor is classify(); classify_iter streams, an unreadable image does not stop it
    assert [r.label for r in classifying["top"]] == ["red solid circle", "blue striped bar"]
    assert tuple(classifying["transform"](classifying["images"][0]).shape) == (3, 112, 112)
    assert type(classifying["r"]).__name__ == "ImageFailure"  # the last of the stream: missing.png

    timm_page = _run_blocks(docs_examples("timm-and-vim.md"), "docs/timm-and-vim.md")
    out = timm_page["out"]
    assert tuple(out.attributes.shape) == (1, 312) and out.attention.shape[:2] == (1, 312)
    assert len(timm_page["backbone"](torch.zeros(1, 3, 64, 64))) == 4  # features_only: four stages
    assert type(timm_page["bare"]).__name__ == "ZeroMamba"
    # the timm route to the shipped model is the predictor's own network
    theirs = classifying["predictor"].model.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in timm_page["nano"].state_dict().items())

    export = _run_blocks(docs_examples("export.md"), "docs/export.md")
    assert export["attributes"].shape == (1, 10) and export["calibrated_scores"].argmax() == 0  # the circle


@pytest.mark.slow
def test_the_command_lines_run(tmp_path: Path) -> None:
    """The README's command lines, the command-line page's, and the Quick start's demo."""
    from .app.conftest import cli_env, zeromamba_command

    folder = clone_like_folder(tmp_path)
    lines = list(dict.fromkeys(readme_command_lines() + docs_command_lines("command-line.md") + [_demo_command()]))
    assert len(lines) >= 6 and all(ln.startswith("zeromamba ") for ln in lines)
    env = cli_env(tmp_path / "hf-home", HF_HUB_OFFLINE="1")
    env["PATH"] = f"{Path(zeromamba_command()).parent}{os.pathsep}{env.get('PATH', '')}"
    outputs = {}
    for line in lines:
        run = subprocess.run(["bash", "-c", line], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{line}\n{run.stderr[-2000:]}"
        outputs[line.split("#")[0].strip()] = run.stdout
    assert "shapes-zsl" in outputs["zeromamba list"]
    listed = outputs["zeromamba classify examples/images/"]
    assert "red solid circle" in listed and "blue striped bar" in listed
    rows = (folder / "results.csv").read_text().splitlines()
    assert len(rows) > 2 and "round red thing" in rows[1] + rows[2] and "blue striped bar" in "".join(rows)
    records = [json.loads(v) for k, v in outputs.items() if "--format jsonl" in k][0]
    assert records["predictions"][0]["class"] == "blue striped bar"
    assert (folder / "why.png").stat().st_size > 0
    assert re.search(r"\b\d of 6 correct", outputs["zeromamba demo"])
    assert (folder / "zeromamba-demo.png").stat().st_size > 0
