"""Plain helpers shared by the tests: paths, the parity fixtures, tolerances, tiny model settings.
Anything that sets state up is a pytest fixture in conftest.py instead."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from huggingface_hub import constants

REPO = Path(__file__).resolve().parents[1]


def benchmark_report(script: str, args: list[str], out: Path, cwd: Path | None = None) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` with ``args`` in a fresh process, as a user does, writing its JSON
    to ``out``; the report (the run must succeed: its stderr is shown if it does not)."""
    cmd = [sys.executable, str(REPO / "benchmarks" / script), *args, "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(out.read_text())


# the smallest model that still has four stages and a real scan
TINY = dict(embed_dim=8, depths=(1, 1, 1, 1))


def fixtures_root(kind: str = "official") -> Path:
    """The parity fixtures of ``kind`` (``official`` or ``vim``): ``tests/fixtures/<kind>``, or
    ``$ZEROMAMBA_FIXTURES/<kind>`` when that variable names another folder (a folder holding
    ``official_checkpoint_manifest.json`` itself is taken as the official one)."""
    env = os.environ.get("ZEROMAMBA_FIXTURES")
    base = Path(env) if env else REPO / "tests" / "fixtures"
    root = base if kind == "official" and (base / "official_checkpoint_manifest.json").is_file() else base / kind
    if not root.is_dir():
        raise FileNotFoundError(f"{kind} fixtures not found at {root}; they ship in tests/fixtures/ of the repository")
    return root


def fixture_dirs(kind: str = "official") -> list[Path]:
    """The model folders of a fixture set (``parity_*`` / ``vim_*``)."""
    return sorted(p for p in fixtures_root(kind).iterdir() if p.is_dir() and (p / "meta.json").is_file())


def scaled_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference divided by the expected tensor's largest magnitude."""
    scale = expected.abs().max().clamp_min(1e-12)
    return ((actual.float() - expected.float()).abs().max() / scale).item()


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode for huggingface_hub, and any socket connection fails loudly."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def vim_release(size: str = "tiny", seed: int = 3) -> tuple[dict[str, torch.Tensor], bytes]:
    """A random Vim of ``size`` with every parameter moved off its initial value, and its release
    file as the Vim authors' DeiT-style trainer writes it (``model``, ``optimizer``, ``epoch``,
    ``args`` as an ``argparse.Namespace``, ...): ``(state dict, file bytes)``."""
    import argparse
    import io

    from zeromamba.architectures import VIM_ARCHITECTURES
    from zeromamba.models import Vim

    g = torch.Generator().manual_seed(seed)
    model = Vim(**VIM_ARCHITECTURES[f"vim_{size}"])
    state = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}
    checkpoint = {
        "model": state,
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
        "lr_scheduler": {"base_lrs": [1e-3], "last_epoch": 299},
        "epoch": 299,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0},
        "args": argparse.Namespace(model=f"vim_{size}_patch16_224", batch_size=128, lr=5e-4, drop_path=0.0),
    }
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    return state, buf.getvalue()
