"""Helpers of the Ray Data / datasets / Parquet tests: what they need installed, a collection of
drawn images, and comparing records with a tolerance on the numbers."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: set by CI (.ci/run): a missing package fails these tests instead of skipping them
REQUIRE_ENV = "ZEROMAMBA_REQUIRE_RAY"
COLOURS = ("red", "green", "blue", "yellow")
FILLS = ("solid", "striped", "dotted")
SHAPES = ("circle", "triangle", "bar")


def require(*modules: str) -> None:
    """Skip (with the reason) when one of ``modules`` is not installed; fail under ``$ZEROMAMBA_REQUIRE_RAY=1``."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    reason = f'needs {", ".join(missing)} (pip install -e ".[ray,datasets]")'
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"required here ({REQUIRE_ENV}=1) but it {reason}")
    pytest.skip(reason)


def draw_collection(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` PNG images of shape classes, drawn as the shipped model's training images were,
    named in order (``img000.png`` ...)."""
    from zeromamba.demo import draw_shape, training_renderer
    from zeromamba.zoo import get_variant

    renderer = training_renderer({"crop_mode": get_variant("shapes-zsl").crop_mode})
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        colour, fill, shape = COLOURS[i % 4], FILLS[(i // 4) % 3], SHAPES[(i // 12) % 3]
        path = folder / f"img{i:03d}.png"
        draw_shape(renderer, colour, fill, shape, rng).save(path)
        paths.append(path)
    return paths


def _close(a: Any, b: Any, tol: float) -> bool:
    """Equal, or for numbers within ``tol`` of the larger of 1 and ``|b|`` (a score of 5 in float32 has
    ulps of 5e-7: another batch composition moves it by a few)."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b))
    return a == b


def assert_same_predictions(got: Sequence[dict], want: Sequence[dict], tol: float = 1e-6) -> None:
    """The same ranked classes with the same fields; numbers within ``tol`` (relative above 1)."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert set(g) == set(w) and all(_close(g[k], w[k], tol) for k in w), (g, w)


def assert_same_records(got: Sequence[dict], want: Sequence[dict], tol: float = 1e-6) -> None:
    """Record by record: the same fields, names, indices, flags and errors; numbers within ``tol`` (relative
    above 1)."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert set(g) == set(w), (g["image"], set(g) ^ set(w))
        for key in w:
            if key == "predictions":
                assert_same_predictions(g[key], w[key], tol)
            else:
                assert _close(g[key], w[key], tol), (g["image"], key, g[key], w[key])
