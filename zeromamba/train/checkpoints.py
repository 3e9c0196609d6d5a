"""Training checkpoints and the random-number state they carry.

``checkpoints/<phase>-epoch<NNNN>/{model.safetensors, state.pt}`` plus ``checkpoints/latest.json``.
A checkpoint folder is written under a temporary name and renamed when complete; only then is
``latest.json`` replaced (atomically), so an interrupted run never points at a half-written one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..fileio import replace_dir, write_json

__all__ = ["Checkpoints", "checkpoint_name", "rng_state", "seed_everything", "set_rng_state"]


def checkpoint_name(phase: str, epoch: int) -> str:
    """The folder name of a phase's checkpoint after ``epoch`` epochs (``final-epoch0003``)."""
    return f"{phase}-epoch{epoch:04d}"


class Checkpoints:
    """The checkpoint folders under ``root`` (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = root

    def latest(self) -> dict[str, Any] | None:
        """``{"phase", "epoch", "dir"}`` of the newest complete checkpoint, or ``None``."""
        p = self.root / "latest.json"
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"cannot read {p}: {e}") from None

    def save(self, phase: str, epoch: int, model: nn.Module, state: dict[str, Any], keep: set[str]) -> str:
        """Write the weights and ``state`` (optimizer, scheduler, RNG, history ...), point
        ``latest.json`` at them, and delete the older folders not named in ``keep``."""
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        name = checkpoint_name(phase, epoch)
        tmp = self.root / f".tmp-{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        torch.save(state, tmp / "state.pt")
        replace_dir(tmp, self.root / name)
        write_json({"phase": phase, "epoch": epoch, "dir": name}, self.root / "latest.json")
        for d in self.root.iterdir():
            if d.is_dir() and d.name != name and d.name not in keep and not d.name.startswith(".tmp-"):
                shutil.rmtree(d, ignore_errors=True)
        return name

    def load_state(self, name: str) -> dict[str, Any]:
        """The ``state.pt`` of checkpoint ``name`` (read with ``weights_only``)."""
        path = self.root / name / "state.pt"
        if not path.is_file():
            raise CheckpointError(f"checkpoint state not found: {path}")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"cannot read {path}: {e}") from None

    def load_weights(self, name: str) -> dict[str, torch.Tensor]:
        """The model weights of checkpoint ``name``."""
        from safetensors.torch import load_file

        path = self.root / name / "model.safetensors"
        if not path.is_file():
            raise CheckpointError(f"checkpoint weights not found: {path}")
        try:
            return load_file(str(path))
        except Exception as e:
            raise CheckpointError(f"cannot read {path} (corrupt or truncated?): {e}") from None


# --- random-number state -------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The state of every generator, in a form ``torch.load(weights_only=True)`` reads back."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), int(n[2]), int(n[3]), float(n[4])))
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x
