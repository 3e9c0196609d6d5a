"""The installed ``zeromamba`` command, run as a user runs it: in a subprocess, with its own
Hugging Face home (an empty cache unless a test fills it) and no zeromamba settings inherited."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def zeromamba_command() -> str:
    """The ``zeromamba`` console script of this interpreter's environment (``pip install -e .``)."""
    beside = Path(sys.executable).with_name("zeromamba")
    found = str(beside) if beside.is_file() else shutil.which("zeromamba")
    if not found:
        pytest.fail("the zeromamba command is not installed: run `pip install -e .` in this environment")
    return found


def cli_env(hf_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "ZEROMAMBA_"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@pytest.fixture
def hf_home(tmp_path: Path) -> Path:
    return tmp_path / "hf-home"


@pytest.fixture
def cli(hf_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli(*args, cwd=None, timeout=180, **env)``: run ``zeromamba *args`` and return the result."""
    command = zeromamba_command()

    def run(*args: str, cwd: str | Path | None = None, timeout: float = 180, **env: str):
        return subprocess.run(
            [command, *map(str, args)],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=cli_env(hf_home, **env),
            timeout=timeout,
        )

    return run
