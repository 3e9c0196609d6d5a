"""Explanations: attention maps at the original image size, attribute choice, and the PNG figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from zeromamba import Predictor
from zeromamba.errors import AttributeMatrixError, ImageError
from zeromamba.explain import COLORMAPS, Explanation, apply_colormap, pretty_name, render_explanation

A = 6
ATTR_NAMES = ["has_bill_shape::curved_(up_or_down)", "has_wing_color::blue", "size::small", "b", "c", "d"]
CLASS_NAMES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross", "004.Crow"]


@pytest.fixture(scope="module")
def predictor(tiny_predictor) -> Predictor:
    return tiny_predictor(CLASS_NAMES, ATTR_NAMES, input_size=96)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("explain") / "photo.png"
    Image.fromarray(rng.integers(0, 255, size=(75, 130, 3), dtype=np.uint8)).save(path)
    return str(path)


def _forward(predictor: Predictor, image) -> tuple[torch.Tensor, torch.Tensor]:
    x = predictor._prepare([image])[0].tensor[None]
    with torch.no_grad():
        out = predictor.model(x)
    return out.attributes[0], out.attention[0].unflatten(-1, out.features.shape[-2:])


def test_default_explains_the_predicted_class(predictor, photo):
    default = predictor.explain(photo, top_k=4)
    assert default.method == "occlusion" and default.attention.shape == (4, 96, 96)  # the input frame
    e = predictor.explain(photo, top_k=4, method="attention")
    assert e.method == "attention" and e.attribute_indices == default.attribute_indices
    assert isinstance(e, Explanation) and len(e) == 4
    assert e.image.size == (130, 75)
    assert e.maps.shape == (4, 75, 130) and e.maps.dtype == np.float32
    assert e.attention.shape == (4, 3, 3)  # 96 / 32
    # the explained class is the classify() prediction
    top = predictor.classify(photo)
    assert e.class_info["name"] == top.name and e.class_info["rank"] == 1
    assert e.class_info["probability"] == pytest.approx(top.probability, abs=1e-5)
    # the attributes are the largest contributions value * class attribute, in order
    values, attention = _forward(predictor, photo)
    contrib = values * predictor.class_attributes[top.index]
    assert e.attribute_indices == torch.argsort(contrib, descending=True)[:4].tolist()
    assert e.contributions == pytest.approx(contrib[e.attribute_indices].tolist(), abs=1e-5)
    assert e.attribute_values == pytest.approx(values[e.attribute_indices].tolist(), abs=1e-5)
    assert e.attribute_names == [ATTR_NAMES[i] for i in e.attribute_indices]
    # the maps are the SLP attention (softmax over positions), upsampled
    assert np.allclose(e.attention, attention[e.attribute_indices].numpy(), atol=1e-5)
    assert np.allclose(e.attention.reshape(4, -1).sum(1), 1.0, atol=1e-5)
    assert e.maps.min() >= 0 and e.maps.max() <= e.attention.max() + 1e-6


def test_choosing_attributes_and_classes(predictor, photo):
    by_name = predictor.explain(photo, ["has_wing_color::blue", 0])
    assert by_name.attribute_indices == [1, 0]
    assert predictor.explain(photo, 2).attribute_indices == [2]
    other = predictor.explain(photo, CLASS_NAMES[3], top_k=2)
    assert other.class_info["name"] == CLASS_NAMES[3] and len(other) == 2
    assert other.class_info["predicted"] == predictor.classify(photo).name
    with pytest.raises(AttributeMatrixError, match="neither an attribute name nor a class name"):
        predictor.explain(photo, "wings")
    with pytest.raises(AttributeMatrixError, match="out of range"):
        predictor.explain(photo, [99])
    with pytest.raises(ImageError, match="one image"):
        predictor.explain([photo, photo])
    # custom classes, and no classes at all: the highest predicted attributes
    custom = predictor.explain(photo, attributes={"x": np.ones(A), "y": np.arange(1, A + 1)}, top_k=3)
    assert custom.class_info["name"] in ("x", "y")
    bare = Predictor(predictor.model, preprocess=predictor.preprocess).explain(photo, top_k=3)
    values, _ = _forward(predictor, photo)
    assert bare.class_info is None and bare.contributions is None
    assert bare.attribute_indices == torch.argsort(values, descending=True)[:3].tolist()


def test_exif_rotated_image_maps_match_the_displayed_size(predictor, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 CCW to display
    path = tmp_path / "rot.jpg"
    Image.new("RGB", (120, 60), (90, 140, 200)).save(path, exif=exif)
    e = predictor.explain(path, top_k=2)
    assert e.image.size == (60, 120) and e.maps.shape == (2, 120, 60)


def test_center_crop_maps_cover_the_crop_only(predictor, photo):
    cropped = Predictor(
        predictor.model, preprocess={"input_size": (3, 64, 64), "crop_mode": "center", "crop_pct": 1.0}
    ).explain(photo, [0], method="attention")
    assert cropped.maps.shape == (1, 75, 130)
    # the sides the crop cut off get no attention
    assert cropped.maps[0, :, :20].max() == 0 and cropped.maps[0, :, -20:].max() == 0
    assert cropped.maps[0, :, 40:90].min() > 0


def test_tensor_input_is_shown_denormalised(predictor, photo):
    tensor = predictor._prepare([photo])[0].tensor
    e = predictor.explain(tensor, top_k=1)
    assert e.image.size == (96, 96) and e.maps.shape == (1, 96, 96)


def test_png(predictor, photo, tmp_path):
    e = predictor.explain(photo, top_k=5)
    out = tmp_path / "why.png"
    fig = e.save_png(out)
    with Image.open(out) as png:
        assert png.format == "PNG" and png.mode == "RGB" and png.size == fig.size
        # 6 panels in 3 columns: 256 px panels, 2 rows, plus titles
        assert 3 * 256 < png.size[0] < 3 * 256 + 80
        assert 2 * 256 < png.size[1] < 2 * 256 + 300
        arr = np.asarray(png)
    # the input panel is the image itself, scaled to 256 px wide
    assert arr.std() > 10
    small = render_explanation(e, panel_size=128, columns=6, colormap="viridis", normalize="shared", title="t")
    assert small.size[0] < 6 * 128 + 100 and small.size[1] < 128 + 150
    with pytest.raises(ValueError):
        e.render(colormap="rainbow")
    with pytest.raises(ValueError):
        e.render(normalize="global")


def test_to_dict_and_str(predictor, photo):
    e = predictor.explain(photo, top_k=2, method="attention")
    d = json.loads(e.to_json())
    assert d["method"] == "attention"
    assert d["image_size"] == [130, 75] and d["class"]["name"] == e.class_info["name"]
    assert [a["name"] for a in d["attributes"]] == e.attribute_names
    assert np.asarray(d["attributes"][0]["attention"]).shape == (3, 3)
    assert e.attribute_names[0] in str(e)


def test_colormaps_and_names():
    for name, points in COLORMAPS.items():
        rgb = apply_colormap(np.array([0.0, 1.0]), name)
        assert tuple(rgb[0]) == points[0] and tuple(rgb[1]) == points[-1]
    # perceptual maps get brighter along the scale
    lum = apply_colormap(np.linspace(0, 1, 11), "inferno") @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(lum) > 0)
    assert apply_colormap(np.zeros((2, 3)), "magma").shape == (2, 3, 3)
    assert pretty_name("has_bill_shape::curved_(up_or_down)") == "bill shape: curved (up or down)"
    assert pretty_name("001.Black_footed_Albatross") == "Black footed Albatross"
