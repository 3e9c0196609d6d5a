"""The explanation methods on models whose evidence is known, and placing maps on the image."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from zeromamba.attribution import DEFAULT_EXPLAIN_METHOD, EXPLAIN_METHODS, attribute_maps, maps_on_image
from zeromamba.errors import ConfigError
from zeromamba.explanation_metrics import pointing_hit
from zeromamba.letterbox import letterbox, letterbox_box


class RedDetector(nn.Module):
    """Attribute 0 is "how red the image is", attribute 1 "how blue"; features are 8 x 8 cells of
    the input; SLP-like attention is uniform (so it points nowhere)."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, x.shape[-1] // 8)

    def forward_head(self, features: torch.Tensor) -> SimpleNamespace:
        red = (features[:, 0] - features[:, 1:].mean(1)).clamp_min(0).mean((1, 2))
        blue = (features[:, 2] - features[:, :2].mean(1)).clamp_min(0).mean((1, 2))
        b, _, h, w = features.shape
        attention = torch.full((b, 2, h * w), 1.0 / (h * w))
        return SimpleNamespace(attributes=torch.stack([red, blue], 1), attention=attention, features=features)

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        return self.forward_head(self.forward_features(x))


def _scene(red_at: tuple[int, int], blue_at: tuple[int, int], size: int = 64) -> torch.Tensor:
    x = torch.full((1, 3, size, size), 0.8)
    (ry, rx), (by, bx) = red_at, blue_at
    x[0, :, ry : ry + 12, rx : rx + 12] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    x[0, :, by : by + 12, bx : bx + 12] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]
    return x


@pytest.mark.parametrize("method", ["occlusion", "gradient"])
def test_faithful_methods_point_at_the_evidence(method: str) -> None:
    model = RedDetector().eval()
    x = _scene(red_at=(8, 40), blue_at=(44, 8))
    maps = attribute_maps(model, x, [0, 1], method)
    assert maps.shape == ((1, 2, 64, 64) if method == "occlusion" else (1, 2, 8, 8))
    red_mask = np.zeros((64, 64), bool)
    red_mask[8:20, 40:52] = True
    blue_mask = np.zeros((64, 64), bool)
    blue_mask[44:56, 8:20] = True
    on_image = maps_on_image(maps[0], (0, 0, 64, 64), 64, 64).numpy()
    assert pointing_hit(on_image[0], red_mask) and not pointing_hit(on_image[0], blue_mask)
    assert pointing_hit(on_image[1], blue_mask) and not pointing_hit(on_image[1], red_mask)
    # per-image targets: the red attribute of the first image, the blue one of the second
    batch = torch.cat([x, _scene(red_at=(44, 44), blue_at=(4, 4))])
    both = attribute_maps(model, batch, torch.tensor([[0], [1]]), method)
    assert both.shape[:2] == (2, 1)
    assert torch.allclose(both[0, 0], maps[0, 0], atol=1e-5)


def test_attention_is_the_models_own_and_methods_are_checked() -> None:
    model = RedDetector().eval()
    maps = attribute_maps(model, _scene((8, 40), (44, 8)), [1], "attention")
    assert maps.shape == (1, 1, 8, 8) and torch.allclose(maps.sum((-1, -2)), torch.ones(1, 1))
    assert DEFAULT_EXPLAIN_METHOD in EXPLAIN_METHODS
    with pytest.raises(ConfigError, match="unknown explanation method"):
        attribute_maps(model, torch.zeros(1, 3, 64, 64), [0], "saliency")


def test_maps_on_image_follow_the_letterbox_frame() -> None:
    # a 200 x 100 image letterboxed into 64 x 64: the frame reaches 50 px past its top and bottom
    box = letterbox_box(200, 100, 64, 64)
    assert box == pytest.approx((0.0, -50.0, 200.0, 150.0), abs=2)
    grid = torch.zeros(1, 8, 8)
    grid[0, 3, 7] = 1.0  # the right edge, just above the middle of the frame
    on_image = maps_on_image(grid, box, 200, 100, mode="nearest")[0]
    ys, xs = np.nonzero(on_image.numpy())
    assert xs.min() >= 174 and xs.max() == 199 and ys.min() >= 25 and ys.max() <= 50
    # a centre crop: the parts the model did not see stay zero
    crop = maps_on_image(torch.ones(1, 4, 4), (50, 0, 150, 100), 200, 100)[0]
    assert crop[:, :50].max() == 0 and crop[:, 150:].max() == 0 and crop[:, 50:150].min() == 1


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_the_border_colour() -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (300, 200), (250, 240, 230))
    ImageDraw.Draw(img).ellipse((100, 50, 200, 150), fill=(255, 0, 0))
    framed, box = letterbox(img, 60, 60)
    arr = np.asarray(framed)
    assert framed.size == (60, 60)
    assert tuple(arr[0, 0]) == (250, 240, 230) and tuple(arr[-1, 30]) == (250, 240, 230)
    red = (arr[..., 0] > 200) & (arr[..., 1] < 80)
    ys, xs = np.nonzero(red)
    # the circle stays round: as wide as it is high (a squash would make it 1.5x taller than wide)
    assert abs((xs.max() - xs.min()) - (ys.max() - ys.min())) <= 1
    assert box == pytest.approx((0, -50, 300, 250), abs=3)


def test_the_default_method_follows_the_model_input_size(tiny_predictor) -> None:
    from PIL import Image

    from zeromamba.attribution import default_method

    assert default_method((3, 80, 80)) == default_method(None) == "occlusion"
    assert default_method((3, 224, 224)) == "occlusion"
    assert default_method((3, 448, 448)) == default_method((3, 224, 300)) == "attention"
    image = Image.new("RGB", (90, 60), (200, 30, 30))
    names, attrs = ["a", "b", "c"], ["x", "y"]
    assert tiny_predictor(names, attrs, input_size=32).explain(image).method == "occlusion"
    big = tiny_predictor(names, attrs, input_size=256)
    assert big.explain(image).method == "attention"  # occlusion would be 225 passes of the big model
    assert big.explain(image, method="gradient").method == "gradient"


class AnyRed(nn.Module):
    """Attribute 0 is "is any part of the image red": the largest redness of any pixel (of the
    image as normalised), so that hiding a small part of a red object changes nothing."""

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        rgb = x * std + mean
        red = (rgb[:, 0] - rgb[:, 1:].mean(1)).clamp_min(0).amax((1, 2))
        return SimpleNamespace(attributes=red[:, None])


def test_occlusion_finds_evidence_that_any_part_of_the_object_gives() -> None:
    rgb = torch.full((1, 3, 32, 32), 0.6)
    rgb[:, :, 8:24, 8:24] = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)  # a red square on grey
    x = (rgb - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    maps = attribute_maps(AnyRed(), x, [0], "occlusion")[0, 0]
    # hiding one window of the square leaves the rest of it red (no drop anywhere); showing only
    # that window in colour, the rest grey, keeps the redness: the map lies on the square
    peak = divmod(int(maps.argmax()), 32)
    assert 8 <= peak[0] < 24 and 8 <= peak[1] < 24
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[8:24, 8:24] = True
    far = torch.ones(32, 32, dtype=torch.bool)
    far[4:28, 4:28] = False  # beyond one window (4 px) of the square
    assert maps[inside].mean() > 0.3 and maps[far].abs().max() < 0.01
