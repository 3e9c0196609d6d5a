"""The attribute-group training options (``group_ce_weight``, ``hue_rotate_fraction``): the
per-group cross-entropy, the hue rotation, and the checks of their configuration."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zeromamba.constants import IMAGENET_MEAN, IMAGENET_STD
from zeromamba.data.shapes import SHAPES_ATTRIBUTES, load_shapes
from zeromamba.errors import ConfigError
from zeromamba.train import group_cross_entropy, resolve_config, rotate_hue
from zeromamba.train.loop import SeenTargets

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def _normalised(rgb: list[tuple[float, float, float]]) -> torch.Tensor:
    """``(B, 3, 2, 2)`` flat images of the given 0..1 colours, normalised as the trainer sees them."""
    x = torch.tensor(rgb, dtype=torch.float32)[:, :, None, None].expand(-1, -1, 2, 2)
    return (x - MEAN) / STD


def _rgb(x: torch.Tensor) -> np.ndarray:
    return (x * STD + MEAN)[:, :, 0, 0].numpy()


def test_rotate_hue_turns_the_hue_and_keeps_grey() -> None:
    colours = [(0.6, 0.4, 0.4), (0.4, 0.55, 0.42), (0.5, 0.5, 0.5)]  # inside the range after turning
    x = _normalised(colours)
    assert torch.allclose(rotate_hue(x, torch.zeros(3)), x, atol=1e-5)
    turned = _rgb(rotate_hue(x, torch.full((3,), 2 * np.pi / 3)))
    # a grey stays grey; a colour keeps its brightness (Y) and its hue moves by about a third of the circle
    assert np.allclose(turned[2], colours[2], atol=1e-5)
    luma = np.array([0.299, 0.587, 0.114])
    for before, after in zip(colours[:2], turned[:2]):
        assert abs(luma @ np.array(before) - luma @ after) < 1e-4
        shift = (colorsys.rgb_to_hsv(*after)[0] - colorsys.rgb_to_hsv(*before)[0]) % 1.0
        assert 0.2 < min(shift, 1 - shift) < 0.47  # YIQ hue is not HSV hue, but the turn is of a similar size
    # per-image angles; every output is a displayable colour
    angles = torch.tensor([0.0, np.pi, 1.0])
    out = _rgb(rotate_hue(_normalised([(1.0, 0.0, 0.0)] * 3), angles))
    assert np.allclose(out[0], (1.0, 0.0, 0.0), atol=1e-5) and not np.allclose(out[1], out[2], atol=0.05)
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6


def test_group_cross_entropy() -> None:
    groups = [torch.tensor([0, 1, 2]), torch.tensor([3, 4])]
    attributes = torch.tensor([[2.0, 0.5, -1.0, 0.3, 0.1], [0.0, 1.0, 3.0, -0.5, 2.0]])
    rows = torch.tensor([[1.0, 0, 0, 0, 1], [0, 0, 1, 1, 0]])
    expected = (
        F.cross_entropy(attributes[:, :3], torch.tensor([0, 2]))
        + F.cross_entropy(attributes[:, 3:], torch.tensor([1, 0]))
    ) / 2
    assert torch.allclose(group_cross_entropy(attributes, rows, groups), expected)
    # the second image does not teach the second group
    skip = torch.tensor([False, True])
    partial = (
        F.cross_entropy(attributes[:, :3], torch.tensor([0, 2]))
        + F.cross_entropy(attributes[:1, 3:], torch.tensor([1]))
    ) / 2
    assert torch.allclose(group_cross_entropy(attributes, rows, groups, [None, skip]), partial)
    # a group no image teaches is left out of the mean
    everyone = torch.tensor([True, True])
    only_first = F.cross_entropy(attributes[:, :3], torch.tensor([0, 2]))
    assert torch.allclose(group_cross_entropy(attributes, rows, groups, [None, everyone]), only_first)


def test_shapes_groups_and_configuration_checks() -> None:
    data = load_shapes(train_per_class=1, test_seen_per_class=1, test_unseen_per_class=1)
    targets = SeenTargets.of(data, data.seen_classes, torch.device("cpu"))
    assert {g: [SHAPES_ATTRIBUTES[i] for i in idx] for g, idx in targets.groups.items()} == {
        "shape": ["circle", "triangle", "bar"],
        "colour": ["red", "green", "blue", "yellow"],
        "fill": ["solid", "striped", "dotted"],
    }
    base = {"dataset": "shapes", "init": "none", "architecture": "zeromamba_nano"}
    targets.check(resolve_config({**base, "group_ce_weight": 0.5, "hue_rotate_fraction": 0.25}))
    with pytest.raises(ConfigError, match="no attribute group 'hue'"):
        targets.check(
            resolve_config({**base, "group_ce_weight": 0.5, "hue_rotate_fraction": 0.25, "colour_group": "hue"})
        )
    ungrouped = SeenTargets(targets.lut, targets.attributes)
    with pytest.raises(ConfigError, match="needs a dataset with attribute groups"):
        ungrouped.check(resolve_config({**base, "group_ce_weight": 0.5}))
    with pytest.raises(ConfigError, match="hue_rotate_fraction needs group_ce_weight"):
        resolve_config({**base, "hue_rotate_fraction": 0.25})
    with pytest.raises(ConfigError, match=r"hue_rotate_fraction must be in \[0, 1\)"):
        resolve_config({**base, "group_ce_weight": 1.0, "hue_rotate_fraction": 1.0})
    # off by default: the published recipes are unchanged
    default = resolve_config({"dataset": "CUB"})
    assert default.group_ce_weight == 0.0 and default.hue_rotate_fraction == 0.0
