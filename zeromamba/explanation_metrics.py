"""How well explanation maps point at the object: the pointing game and the map's mass on the object.

For one map (at the image's resolution) and the object's mask:

* **pointing game**: a hit when the map's peak (its largest value; the first one on ties) lies on
  the object or within ``tolerance`` of it. Its chance level is the share of the image within the
  tolerance of the object: where a peak placed uniformly at random would hit.
* **mass on object**: the share of the map's positive mass that lies on the object. Its chance
  level is the object's share of the image (a uniform map).

``tolerance`` defaults to 4% of the image's longer side (3 px at 80 px; the usual pointing game
allows 15 px at 224, 6.7%). Both are reported per attribute group (for Shapes: the class's own
shape, colour and fill attribute), next to their chance levels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_TOLERANCE",
    "GroupScore",
    "ExplanationScores",
    "format_explanation_table",
    "mass_on_object",
    "pointing_hit",
    "score_map",
    "summarise",
]

#: pointing-game tolerance as a fraction of the image's longer side
DEFAULT_TOLERANCE = 0.04


def _tolerance_px(shape: tuple[int, int], tolerance: float) -> float:
    return max(1.0, tolerance * max(shape))


def _near_object(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within ``radius`` of the mask (the mask dilated by a disc)."""
    r = int(math.floor(radius))
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx * dx + dy * dy > radius * radius or (dx == 0 and dy == 0):
                continue
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            out[yd, xd] |= mask[ys, xs]
    return out


def _check(heat: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    heat, mask = np.asarray(heat, dtype=np.float64), np.asarray(mask, dtype=bool)
    if heat.shape != mask.shape or heat.ndim != 2:
        raise ValueError(f"map {heat.shape} and mask {mask.shape} must be the same 2-D shape")
    return heat, mask


def pointing_hit(heat: np.ndarray, mask: np.ndarray, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether the peak of ``heat`` lies within ``tolerance`` (fraction of the longer side) of ``mask``."""
    heat, mask = _check(heat, mask)
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return False
    radius = _tolerance_px(heat.shape, tolerance)
    return bool(np.min((ys - y) ** 2 + (xs - x) ** 2) <= radius * radius)


def mass_on_object(heat: np.ndarray, mask: np.ndarray) -> float:
    """The share of the positive part of ``heat`` on ``mask`` (0 when the map has no positive mass)."""
    heat, mask = _check(heat, mask)
    positive = np.clip(heat, 0.0, None)
    total = float(positive.sum())
    return float(positive[mask].sum()) / total if total > 0 else 0.0


def score_map(heat: np.ndarray, mask: np.ndarray, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, float]:
    """``hit``, ``mass`` and their chance levels (``hit_chance``, ``mass_chance``) for one map."""
    heat, mask = _check(heat, mask)
    near = _near_object(mask, _tolerance_px(mask.shape, tolerance))
    return {
        "hit": float(pointing_hit(heat, mask, tolerance)),
        "mass": mass_on_object(heat, mask),
        "hit_chance": float(near.mean()),
        "mass_chance": float(mask.mean()),
    }


@dataclass
class GroupScore:
    """Means over the images of one attribute group (fractions)."""

    group: str
    images: int
    pointing: float
    pointing_chance: float
    mass: float
    mass_chance: float


@dataclass
class ExplanationScores:
    """The pointing game and mass on object of one method, per attribute group."""

    method: str
    groups: list[GroupScore]
    tolerance: float = DEFAULT_TOLERANCE

    def group(self, name: str) -> GroupScore:
        return next(g for g in self.groups if g.group == name)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "tolerance": self.tolerance, "groups": [asdict(g) for g in self.groups]}


def summarise(
    method: str, records: Iterable[Mapping[str, Any]], tolerance: float = DEFAULT_TOLERANCE
) -> ExplanationScores:
    """Average :func:`score_map` results; each record also has its ``group`` name."""
    by_group: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        by_group.setdefault(str(rec["group"]), []).append(rec)
    groups = [
        GroupScore(
            group=name,
            images=len(recs),
            pointing=float(np.mean([r["hit"] for r in recs])),
            pointing_chance=float(np.mean([r["hit_chance"] for r in recs])),
            mass=float(np.mean([r["mass"] for r in recs])),
            mass_chance=float(np.mean([r["mass_chance"] for r in recs])),
        )
        for name, recs in by_group.items()
    ]
    return ExplanationScores(method=method, groups=groups, tolerance=tolerance)


def format_explanation_table(scores: Iterable[ExplanationScores], title: str = "") -> str:
    """A plain-text table: per method and group, the pointing game and mass on object with chance."""
    lines = [title] if title else []
    lines.append(f"{'method':<10} {'group':<7} {'images':>6} {'pointing':>9} {'chance':>7} {'mass':>7} {'chance':>7}")
    for s in scores:
        for g in s.groups:
            lines.append(
                f"{s.method:<10} {g.group:<7} {g.images:>6} {100 * g.pointing:>8.1f}% {100 * g.pointing_chance:>6.1f}%"
                f" {100 * g.mass:>6.1f}% {100 * g.mass_chance:>6.1f}%"
            )
    return "\n".join(lines)
