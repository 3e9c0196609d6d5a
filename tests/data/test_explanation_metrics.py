"""The pointing game and mass on object, and the Shapes renderer's object masks they score against."""

from __future__ import annotations

import numpy as np
import pytest

from zeromamba.data.shapes import SHAPES_GROUPS, load_shapes, render_sample
from zeromamba.explanation_metrics import (
    format_explanation_table,
    mass_on_object,
    pointing_hit,
    score_map,
    summarise,
)


def _disc(shape: tuple[int, int], cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_pointing_game_with_tolerance() -> None:
    mask = _disc((100, 100), 50, 50, 10)
    heat = np.zeros((100, 100))
    heat[50, 50] = 1.0
    assert pointing_hit(heat, mask)
    heat[:] = 0
    heat[50, 63] = 1.0  # 3 px off the edge: within 4% of 100 px
    assert pointing_hit(heat, mask)
    heat[:] = 0
    heat[50, 66] = 1.0  # 6 px off: a miss
    assert not pointing_hit(heat, mask)
    assert pointing_hit(heat, mask, tolerance=0.07)
    assert not pointing_hit(heat, np.zeros_like(mask))  # no object: never a hit


def test_mass_and_chance_levels() -> None:
    mask = np.zeros((10, 20), bool)
    mask[:, :5] = True  # a quarter of the image
    uniform = np.ones((10, 20))
    assert mass_on_object(uniform, mask) == pytest.approx(0.25)
    signed = np.where(mask, 2.0, -1.0)  # negative evidence does not count
    assert mass_on_object(signed, mask) == 1.0
    assert mass_on_object(-uniform, mask) == 0.0
    s = score_map(uniform, mask)
    assert s["mass_chance"] == pytest.approx(0.25) and s["mass"] == pytest.approx(0.25)
    assert 0.25 < s["hit_chance"] < 0.35  # the quarter plus the 1 px tolerance band
    with pytest.raises(ValueError, match="same 2-D shape"):
        score_map(uniform, mask[:, :10])


def test_summary_per_group_and_table() -> None:
    records = [
        {"group": "shape", "hit": 1.0, "mass": 0.5, "hit_chance": 0.2, "mass_chance": 0.1},
        {"group": "shape", "hit": 0.0, "mass": 0.3, "hit_chance": 0.4, "mass_chance": 0.3},
        {"group": "fill", "hit": 1.0, "mass": 0.9, "hit_chance": 0.3, "mass_chance": 0.2},
    ]
    scores = summarise("occlusion", records)
    shape = scores.group("shape")
    assert (shape.images, shape.pointing, shape.mass) == (2, 0.5, pytest.approx(0.4))
    assert shape.pointing_chance == pytest.approx(0.3) and scores.group("fill").pointing == 1.0
    table = format_explanation_table([scores], title="t")
    assert "occlusion" in table and "50.0%" in table and scores.to_dict()["groups"][0]["group"] == "shape"


def test_renderer_masks_are_the_drawn_object() -> None:
    data = load_shapes(seed=5)
    for i in data.splits["test_unseen"][::97]:
        sample = data.render.sample(int(i))
        arr = np.asarray(sample.image).astype(float)
        assert sample.mask.shape == arr.shape[:2] and 0.01 < sample.mask.mean() < 0.6
        assert np.array_equal(np.asarray(data.render(int(i))), arr.astype(np.uint8))  # same image
        # the object differs from the background: the mean colours inside and outside are far apart
        inside, outside = arr[sample.mask].mean(0), arr[~sample.mask].mean(0)
        assert np.abs(inside - outside).max() > 25, (sample.colour, sample.fill, sample.shape)
        assert data.class_names[data.labels[i]] == f"{sample.colour} {sample.fill} {sample.shape}"
    assert set(SHAPES_GROUPS) == {"shape", "colour", "fill"}
    with pytest.raises(ValueError, match="unknown attribute value"):
        render_sample("purple", "solid", "circle", np.random.default_rng(0))
