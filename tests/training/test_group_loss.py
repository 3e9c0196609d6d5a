"""The attribute-group training options (``group_ce_weight``, ``hue_rotate_fraction``,
``swatches_per_batch``): the per-group cross-entropy, the hue rotation, the texture swatches and
their loss, and the checks of their configuration."""

from __future__ import annotations

import colorsys
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zeromamba.constants import IMAGENET_MEAN, IMAGENET_STD
from zeromamba.data import build_transform
from zeromamba.data.shapes import COLOURS, FILLS, SHAPES, SHAPES_ATTRIBUTES, SwatchRenderer, load_shapes
from zeromamba.data.shapes_draw import ANY_COLOUR, BLOB
from zeromamba.errors import ConfigError
from zeromamba.runtime import DistEnv
from zeromamba.train import group_cross_entropy, resolve_config, rotate_hue
from zeromamba.train.checkpoints import Checkpoints
from zeromamba.train.loop import SWATCH_LOGIT_SCALE, PhaseState, SeenTargets, SwatchFeed, Trainer
from zeromamba.train.recipe import build_model

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


def test_swatches_show_a_fill_and_are_of_no_class() -> None:
    renderer = SwatchRenderer(0)
    samples = [renderer.sample(i) for i in range(6)]
    assert [s.fill for s in samples] == [FILLS[i % 3] for i in range(6)]
    assert all(s.colour == ANY_COLOUR and s.shape == BLOB for s in samples)
    assert ANY_COLOUR not in COLOURS and BLOB not in SHAPES
    assert all(s.mask.any() and not s.mask.all() for s in samples)
    # a pure function of (seed, index), and a stream of its own
    again = np.asarray(SwatchRenderer(0).sample(4).image)
    assert np.array_equal(again, np.asarray(samples[4].image))
    assert not np.array_equal(np.asarray(SwatchRenderer(1).sample(4).image), again)
    # a patterned swatch has two colours inside it, a solid one (noise and JPEG aside) about one
    solid, striped = (np.asarray(s.image, dtype=np.float32)[s.mask] for s in samples[:2])
    assert solid.std(0).mean() < striped.std(0).mean()


def test_swatch_feed_and_its_loss(tmp_path) -> None:
    data = load_shapes(train_per_class=2, test_seen_per_class=1, test_unseen_per_class=1)
    targets = SeenTargets.of(data, data.seen_classes, torch.device("cpu"))
    base = {"dataset": "shapes", "init": "none", "architecture": "zeromamba_nano_s8", "crop_mode": "letterbox"}
    base.update(image_size=80, drop_path_rate=0.0)  # deterministic steps
    transform = build_transform(80, crop_mode="letterbox")
    assert SwatchFeed.of(resolve_config(base), targets, transform) is None
    cfg = resolve_config({**base, "swatches_per_batch": 4})
    feed = SwatchFeed.of(cfg, targets, transform)
    assert feed is not None and [SHAPES_ATTRIBUTES[i] for i in feed.columns] == list(FILLS)
    batch = feed.batch(step=0, rank=0, world=2)
    images, values = batch.images, batch.values
    assert images.shape == (4, 3, 80, 80) and values.tolist() == [0, 1, 2, 0]
    other = feed.batch(step=0, rank=1, world=2).images  # every rank draws its own
    assert not torch.equal(images, other)
    with pytest.raises(ConfigError, match="only the shapes dataset has texture swatches"):
        SwatchFeed.of(resolve_config({"dataset": "CUB", "swatches_per_batch": 4}), targets, transform)
    with pytest.raises(ConfigError, match="swatches_per_batch must be non-negative"):
        resolve_config({**base, "swatches_per_batch": -1})

    # the swatches add swatch_weight x the cross-entropy of their (scaled) fill logits, nothing else
    env = DistEnv(world=1, rank=0, device=torch.device("cpu"))
    x = torch.stack([data.dataset(data.splits["trainval"][:3], transform)[i][0] for i in range(3)])
    y = torch.as_tensor(data.labels[data.splits["trainval"][:3]])
    model = build_model(cfg, data.num_attributes, load_init=False).train()
    losses = []
    for weight in (0.0, 2.0):
        run_cfg = resolve_config({**base, "swatches_per_batch": 4, "swatch_weight": weight})
        net = copy.deepcopy(model)
        state = PhaseState.fresh(net, run_cfg, None)
        trainer = Trainer(run_cfg, env, None, Checkpoints(tmp_path / str(weight)), False)
        losses.append(trainer._step(net, x, y, state, targets, "test", batch)[0])
    with torch.no_grad():
        out = model(torch.cat([x, images])).attributes[3:, feed.columns]
        expected = 2.0 * F.cross_entropy(SWATCH_LOGIT_SCALE * out, values).item()
    assert losses[1] - losses[0] == pytest.approx(expected, rel=1e-4)
