"""The installed ``zeromamba`` command, run as a user runs it: in a subprocess, with its own
Hugging Face home (an empty cache unless a test fills it) and no zeromamba settings inherited."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass
class AppServer:
    """A ``zeromamba app`` serving on 127.0.0.1: its URL, process and log file."""

    url: str
    process: subprocess.Popen
    log: Path

    def rss_bytes(self) -> int:
        """The server process's resident memory now."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc: needs Linux")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(folder: Path, *args: str, **env: str) -> Iterator[AppServer]:
    """The installed ``zeromamba app *args`` on a free port of 127.0.0.1, once its page answers;
    stopped on exit. Its output goes to ``folder / "server.log"``."""
    port = _free_port()
    log = folder / "server.log"
    environment = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [zeromamba_command(), "app", "--port", str(port), *args],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180  # importing Gradio takes a while on a busy 2-core machine
        while True:
            if proc.poll() is not None:
                pytest.fail(f"zeromamba app exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"zeromamba app did not serve its page within 180 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield AppServer(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
