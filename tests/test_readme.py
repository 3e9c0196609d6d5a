"""The README's examples, run as written (offline), so that the README cannot drift from the code.
Python blocks preceded by ``<!-- readme-example ... -->`` are run in order in one namespace, bash
blocks so marked line by line with the installed command, in a folder that holds nothing but what a
clone has: ``examples/`` and ``tests/fixtures/`` (linked, never written). The files and attribute
names the README shows are compared with the shipped ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

from .helpers import REPO

MARKER = re.compile(r"<!-- readme-example[^>]*-->\s*```python\n(.*?)```", re.S)
CLI_MARKER = re.compile(r"<!-- readme-example[^>]*-->\s*```bash\n(.*?)```", re.S)
SHOWN_FILE = re.compile(r"<!-- readme-file: (\S+) -->\s*```\w*\n(.*?)```", re.S)


def readme_examples() -> list[str]:
    return MARKER.findall((REPO / "README.md").read_text(encoding="utf-8"))


def readme_command_lines() -> list[str]:
    blocks = CLI_MARKER.findall((REPO / "README.md").read_text(encoding="utf-8"))
    return [ln for b in blocks for ln in b.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def clone_like_folder(tmp_path: Path) -> Path:
    """A working folder holding what a fresh clone has for the examples: ``examples/`` and
    ``tests/fixtures/``, linked to the repository's own."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    (tmp_path / "tests" / "fixtures").symlink_to(REPO / "tests" / "fixtures", target_is_directory=True)
    return tmp_path


def test_the_readme_names_only_files_a_clone_has() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    examples = "\n".join(readme_examples() + readme_command_lines())
    named = set(re.findall(r"(?:examples|tests/fixtures)/[\w./-]+\.\w+", examples))
    assert {"examples/images/circle.png", "examples/my_classes.csv", "examples/my_classes.json"} <= named
    assert all((REPO / n).is_file() for n in named), sorted(n for n in named if not (REPO / n).is_file())
    assert "../shared" not in text and "/work/shared" not in text
    assert not re.search(r"\bissue \d+", text, re.I)  # issue numbers mean nothing to a user
    # the files the README shows are the shipped files, byte for byte
    shown = SHOWN_FILE.findall(text)
    assert {name for name, _ in shown} == {"examples/my_classes.csv", "examples/my_classes.json"}
    for name, body in shown:
        assert body == (REPO / name).read_text(encoding="utf-8"), name
    json.loads((REPO / "examples/my_classes.json").read_text())


def test_the_readme_shows_the_shipped_models_attribute_names() -> None:
    shipped = json.loads((REPO / "zeromamba" / "pretrained" / "shapes-zsl" / "config.json").read_text())
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- readme-attribute-names -->\s*\n(.*?)\n\n", text, re.S)
    assert block is not None
    assert re.findall(r"`([^`]+)`", block.group(1)) == shipped["attribute_names"]


def test_the_readme_marks_its_examples() -> None:
    blocks = readme_examples()
    assert len(blocks) >= 2
    assert any("from_pretrained" in b for b in blocks) and any("timm.create_model" in b for b in blocks)


def _quick_start_commands() -> list[str]:
    """The command lines of the README's Quick start block (comments left out)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick start\n.*?```bash\n(.*?)```", text, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_the_readme_test_commands_as_written() -> None:
    commands = _quick_start_commands()
    install = next(c for c in commands if '".[test]"' in c)
    runs = [c for c in commands if c.startswith("python -m pytest")]
    assert runs == ['python -m pytest -q -m "not slow"', "python -m pytest -q"]  # the fast run, the full one
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert install in ci and runs[1] in ci  # verbatim, as whole lines
    assert ci.index(install) < ci.index(runs[1])
    # the README says what CI adds and what a plain run skips
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "ZEROMAMBA_REQUIRE_BROWSER=1" in text and "skipped" in text and "test_app_browser.py" in text


@pytest.mark.slow
def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(clone_like_folder(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace: dict = {}
    for block in readme_examples():
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code

    assert namespace["result"].label == "red solid circle"
    assert [r.label for r in namespace["results"]] == ["round red thing", "blue striped bar"]
    assert [r.label for r in namespace["named"]] == ["red disc", "blue bar"]
    assert dict(namespace["attrs"].top(3)).keys() == {"circle", "red", "solid"}
    assert Path("why.png").stat().st_size > 0 and Path("my-model/config.json").is_file()
    assert namespace["attributes"].shape == (1, 10) and namespace["calibrated_scores"].argmax() == 0  # the circle
    out = namespace["out"]
    assert tuple(out.attributes.shape) == (1, 312) and out.attention.shape[:2] == (1, 312)
    assert len(namespace["backbone"](torch.zeros(1, 3, 64, 64))) == 4  # features_only: four stages
    assert type(namespace["bare"]).__name__ == "ZeroMamba"
    # the timm route to the shipped model is the predictor's own network; calling it is classify()
    theirs = namespace["predictor"].model.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in namespace["nano"].state_dict().items())
    assert [r.label for r in namespace["top"]] == ["red solid circle", "blue striped bar"]


@pytest.mark.slow
def test_readme_command_lines_run(tmp_path: Path) -> None:
    from .app.conftest import cli_env, zeromamba_command

    folder = clone_like_folder(tmp_path)
    lines = readme_command_lines()
    assert len(lines) >= 4 and all(ln.startswith("zeromamba ") for ln in lines)
    env = cli_env(tmp_path / "hf-home", HF_HUB_OFFLINE="1")
    env["PATH"] = f"{Path(zeromamba_command()).parent}{os.pathsep}{env.get('PATH', '')}"
    outputs = {}
    for line in lines:
        run = subprocess.run(["bash", "-c", line], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{line}\n{run.stderr[-2000:]}"
        outputs[line.split("#")[0].strip()] = run.stdout
    assert "shapes-zsl" in next(v for k, v in outputs.items() if k == "zeromamba list")
    listed = next(v for k, v in outputs.items() if k == "zeromamba classify examples/images/")
    assert "red solid circle" in listed and "blue striped bar" in listed
    rows = (folder / "results.csv").read_text().splitlines()
    assert len(rows) > 2 and "round red thing" in rows[1] + rows[2] and "blue striped bar" in "".join(rows)
    records = [json.loads(v) for k, v in outputs.items() if "--format jsonl" in k][0]
    assert records["predictions"][0]["class"] == "blue striped bar"
    assert (folder / "why.png").stat().st_size > 0
