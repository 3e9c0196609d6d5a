"""Training augmentations: what each does to an image, how a configuration names them, and that a
seeded run repeats them."""

from __future__ import annotations

import pytest
import torch

from zeromamba.data import build_transform
from zeromamba.data.augment import RandomPixelate, RandomWarp, build_augmentations
from zeromamba.errors import ConfigError
from zeromamba.train import resolve_config


def _stripes(size: int = 64, period: int = 8) -> torch.Tensor:
    """Vertical black-and-white stripes, ``period`` pixels a cycle."""
    cols = (torch.arange(size) // (period // 2)) % 2
    return cols.float().expand(3, size, size).clone()


def test_pixelate_redraws_the_image_in_blocks() -> None:
    x = torch.rand(3, 60, 60)
    torch.manual_seed(0)
    y = RandomPixelate(p=1.0, factors=(3.0, 3.0))(x)
    assert y.shape == x.shape
    # 20 x 20 blocks of 3 x 3 equal pixels, each the mean of the block it replaces
    blocks = y.reshape(3, 20, 3, 20, 3)
    assert torch.equal(blocks, blocks[:, :, :1, :, :1].expand_as(blocks))
    assert torch.allclose(blocks[:, :, 0, :, 0], x.reshape(3, 20, 3, 20, 3).mean(dim=(2, 4)), atol=1e-6)


def test_warp_bends_straight_stripes_but_keeps_them_stripes() -> None:
    x = _stripes()
    torch.manual_seed(1)
    y = RandomWarp(p=1.0, max_shift=0.05)(x)
    assert y.shape == x.shape and not torch.equal(x, y)
    # each column of the original is constant; warped, the stripes move by different amounts on different rows
    assert float((y[0] - y[0, :1]).abs().max()) > 0.5
    # a shift of at most 5% of the side: every row still shows alternating stripes of about the same width
    assert float(y.mean()) == pytest.approx(float(x.mean()), abs=0.06)
    dark_share_by_row = (y[0] < 0.5).float().mean(dim=1)
    assert float(dark_share_by_row.min()) > 0.3 and float(dark_share_by_row.max()) < 0.7


def test_probability_zero_and_one() -> None:
    x = torch.rand(3, 32, 32)
    assert RandomWarp(p=0.0)(x) is x and RandomPixelate(p=0.0)(x) is x
    torch.manual_seed(2)
    changed = sum(not torch.equal(RandomPixelate(p=0.5)(x), x) for _ in range(200))
    assert 70 < changed < 130


def test_a_seeded_training_transform_repeats_and_names_its_steps() -> None:
    from PIL import Image

    image = Image.fromarray((_stripes(80, 10).permute(1, 2, 0).numpy() * 255).astype("uint8"))
    transform = build_transform(48, train=True, crop_mode="border", augment=["warp", "pixelate"])
    names = [type(step).__name__ for step in transform.transforms]
    assert names[-3:] == ["RandomWarp", "RandomPixelate", "Normalize"]

    def run(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [transform(image) for _ in range(8)]

    first, again, other = run(3), run(3), run(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    with pytest.raises(ValueError, match="for training transforms"):
        build_transform(48, train=False, augment=["warp"])


def test_names_are_checked_where_they_are_given() -> None:
    assert [type(a).__name__ for a in build_augmentations(["pixelate"])] == ["RandomPixelate"]
    with pytest.raises(ValueError, match="unknown augmentation.*'blur'.*use warp, pixelate"):
        build_augmentations(["blur"])
    with pytest.raises(ValueError, match="named twice"):
        build_augmentations(["warp", "warp"])
    with pytest.raises(ValueError, match="1 <= low <= high"):
        RandomPixelate(factors=(3.0, 2.0))
    assert resolve_config({"dataset": "CUB", "augment": "warp, pixelate"}).augment == ["warp", "pixelate"]
    assert resolve_config({"dataset": "CUB"}).augment == []
    with pytest.raises(ConfigError, match="augment: unknown augmentation.*'sharpen'.*use warp, pixelate"):
        resolve_config({"dataset": "CUB", "augment": ["warp", "sharpen"]})
    with pytest.raises(ConfigError, match=r"augment: augmentations are named twice: \['warp', 'warp'\]"):
        resolve_config({"dataset": "CUB", "augment": "warp,warp"})
