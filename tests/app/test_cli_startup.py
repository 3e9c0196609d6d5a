"""Start-up: ``zeromamba --help`` and ``zeromamba list`` never import torch; ``import zeromamba`` is
lazy and still registers the architectures with timm, whichever of the two is imported first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zeromamba.cli import ALL, COMMANDS, build_parser

from .conftest import cli_env

#: the optional engines (the ray and datasets extras): never imported unless a run asks for them
OPTIONAL_ENGINES = ("ray", "pyarrow", "pandas", "datasets")


def _imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"], ["classify", "--help"], ["--version"]])
def test_help_and_list_do_not_import_torch(cli, args: list[str]) -> None:
    out = cli(*args, PYTHONPROFILEIMPORTTIME="1")
    assert out.returncode == 0, out.stderr[-2000:]
    imported = _imported(out.stderr)
    assert "zeromamba.cli" in imported and not {"torch", "timm", "numpy", *OPTIONAL_ENGINES} & imported
    if args == ["--help"]:
        assert all(name in out.stdout for name in COMMANDS) and "exit codes:" in out.stdout
    if args == ["list", "--json"]:
        rows = {r["name"]: r for r in json.loads(out.stdout)}
        assert rows["shapes-zsl"]["available"] == "shipped" and rows["cub-gzsl"]["available"] == "unpublished"


def test_python_dash_m_runs_the_same_command(hf_home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "zeromamba", "list"], capture_output=True, text=True, env=cli_env(hf_home), timeout=120
    )
    assert out.returncode == 0 and "shapes-zsl" in out.stdout


def test_the_command_table_matches_the_command_modules() -> None:
    """COMMANDS lists every command a module registers, with the help the module gives it."""
    subparsers = build_parser(ALL)._subparsers._group_actions[0]
    registered = {choice.dest: choice.help for choice in subparsers._choices_actions}
    assert registered == {name: text for name, (_, text) in COMMANDS.items()}
    assert list(registered) == list(COMMANDS)  # --help lists them in the table's order


def test_import_zeromamba_loads_neither_torch_nor_timm(hf_home: Path) -> None:
    heavy = {"torch", "timm", "numpy", "PIL", *OPTIONAL_ENGINES}
    script = f"import sys, zeromamba; print(sorted({heavy!r} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(hf_home))
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


@pytest.mark.slow
def test_the_batch_classifier_loads_no_engine_until_asked(hf_home: Path) -> None:
    """Ray, pyarrow, pandas and datasets load when a batch of theirs comes, not with the class."""
    script = (
        "import sys, zeromamba; c = zeromamba.BatchClassifier('shapes-zsl'); c({'path': []}); "
        f"print(sorted({set(OPTIONAL_ENGINES)!r} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(hf_home))
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize(
    "code",
    [
        "import zeromamba, timm",  # zeromamba first: registered when timm is imported
        pytest.param("import timm, zeromamba", marks=pytest.mark.slow),  # timm first: by `import zeromamba`
        pytest.param("import zeromamba; from zeromamba import Predictor; import timm", marks=pytest.mark.slow),
        pytest.param("import torch, zeromamba.cli, timm", marks=pytest.mark.slow),  # a submodule: the root first
    ],
)
def test_the_architectures_are_registered_with_timm(code: str, hf_home: Path) -> None:
    listed = "timm.list_models('zeromamba*') + timm.list_models('vmamba*') + timm.list_models('vim_*')"
    script = f"{code}\nprint(sorted({listed}))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(hf_home))
    assert out.returncode == 0, out.stderr
    from zeromamba.factory import ARCHITECTURES

    assert out.stdout.strip() == str(sorted(set(ARCHITECTURES)))  # every architecture of the package, no other


def test_list_marks_what_loads_now_offline(cli, hf_home: Path, tmp_path: Path) -> None:
    """Offline, only shipped and cached models load: ``list`` says so for each (the Hugging Face cache
    for zeromamba folders, zeromamba's own cache for the converted Vim releases)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = hf_home / "hub" / "models--zeromamba--zeromamba-small-cub-gzsl" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(commit)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes(b"{}")
    release = tmp_path / "zeromamba-cache" / "releases" / "hustvl--Vim-small-midclstok"
    (release / commit).mkdir(parents=True)
    (release / commit / "model.safetensors").write_bytes(b"x")
    (release / "refs").mkdir()
    (release / "refs" / "main").write_text(commit + "\n")
    env = {"ZEROMAMBA_CACHE_DIR": str(tmp_path / "zeromamba-cache")}

    def available(**extra: str) -> dict[str, str]:
        out = cli("list", "--json", **env, **extra)
        assert out.returncode == 0, out.stderr
        return {r["name"]: r["available"] for r in json.loads(out.stdout)}

    offline = available(HF_HUB_OFFLINE="1")
    assert offline["shapes-zsl"] == "shipped" and offline["cub-gzsl"] == "cached" and offline["vim-small"] == "cached"
    assert offline["vim-base"] == offline["vim-tiny"] == "offline" and offline["sun-gzsl"] == "unpublished"
    assert available()["vim-base"] == "hub"  # online: downloads on first use
    table = cli("list", HF_HUB_OFFLINE="1", **env).stdout
    assert "offline: not cached, and huggingface_hub is offline (HF_HUB_OFFLINE): does not load now" in table
    assert next(r for r in table.splitlines() if r.startswith("shapes-zsl")).split()[-2:] == ["zeromamba", "shipped"]
