"""Shared test helpers: where the parity fixtures live (tests/fixtures), tolerances, tiny model settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


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


def fixture_dirs() -> list[Path]:
    return sorted(p for p in fixtures_root().iterdir() if p.is_dir() and p.name.startswith("parity_"))


def scaled_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference divided by the expected tensor's largest magnitude."""
    scale = expected.abs().max().clamp_min(1e-12)
    return ((actual.float() - expected.float()).abs().max() / scale).item()


# the smallest model that still has four stages and a real scan
TINY = dict(embed_dim=8, depths=(1, 1, 1, 1))


def tiny_predictor(class_names: list[str], attribute_names: list[str], input_size: int):  # noqa: ANN201
    """A random tiny ZeroMamba (seed 0) with a random class-attribute matrix (seed 0): classes 0
    and 1 seen, gamma 0.3."""
    import numpy as np

    from zeromamba import Predictor
    from zeromamba.models import ZeroMamba

    torch.manual_seed(0)
    model = ZeroMamba(num_attributes=len(attribute_names), semantic_dim=8, **TINY)
    matrix = np.random.default_rng(0).uniform(0.05, 1.0, size=(len(class_names), len(attribute_names)))
    return Predictor(
        model,
        class_attributes=matrix,
        class_names=class_names,
        seen=[0, 1],
        gamma=0.3,
        attribute_names=attribute_names,
        preprocess={"input_size": (3, input_size, input_size)},
    )


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
