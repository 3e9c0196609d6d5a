"""Shared test helpers: where the official fixtures live, tolerances, tiny model settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def fixtures_root() -> Path:
    """``$ZEROMAMBA_FIXTURES`` or ``../shared/fixtures/official`` next to the repository."""
    env = os.environ.get("ZEROMAMBA_FIXTURES")
    root = Path(env) if env else REPO.parent / "shared" / "fixtures" / "official"
    if not root.is_dir():
        raise FileNotFoundError(
            f"official fixtures not found at {root}; set ZEROMAMBA_FIXTURES to the folder holding "
            "official_checkpoint_manifest.json and parity_dstate*/"
        )
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
