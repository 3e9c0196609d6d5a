"""The web page's logic without a browser: what the page shows for an image, classes defined on the
page or from a CSV, and the errors a visitor can cause."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zeromamba.errors import AttributeMatrixError, ImageError
from zeromamba.webapp import add_class, add_classes_from_csv, candidates, classify_for_page, page_image

ATTRS = ["round", "red", "striped", "big"]
CLASSES = ["apple", "ball", "zebra", "tomato"]


@pytest.fixture(scope="module")
def predictor(tiny_predictor):
    return tiny_predictor(CLASSES, ATTRS, input_size=32, seen=(0, 1))


def _image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))


def test_page_shows_ranked_classes_attributes_and_heat_maps(predictor) -> None:
    page = classify_for_page(predictor, _image(), {}, method="gradient", top_k=3)
    top = predictor.classify(_image(), top_k=3)
    assert [r[1] for r in page["classes"]] == top.names
    # the ranking score is the calibrated probability (GZSL), and rows are sorted by it
    assert [r[2] for r in page["classes"]] == pytest.approx(top.calibrated, abs=1e-4)
    assert {r[4] for r in page["classes"]} <= {"seen in training", "unseen in training"}
    assert sorted(r[0] for r in page["attributes"]) == sorted(a for a in ATTRS)
    assert page["explanation"].method == "gradient" and page["heatmaps"].size[0] > 180
    assert page["headline"].startswith(f"## {top.name}")


def test_classes_defined_on_the_page(predictor, tmp_path) -> None:
    custom = add_class(predictor, {}, "cherry", ["round", "red"])
    assert custom == {"cherry": [1.0, 1.0, 0.0, 0.0]}
    matrix, names, seen = candidates(predictor, custom)
    assert names[-1] == "cherry" and seen[-1] is False and matrix.shape == (5, 4)
    # a page class with the same attribute profile as an own class replaces it
    same = {"my apple": (3 * predictor.class_attributes[0]).tolist()}  # apple's profile, at another scale
    _, names, _ = candidates(predictor, same)
    assert names == ["ball", "zebra", "tomato", "my apple"]
    csv = tmp_path / "classes.csv"
    csv.write_text("class,round,red,striped,big\nmelon,1,0,1,1\nlime,1,0,0,0\n")
    more = add_classes_from_csv(predictor, custom, csv)
    assert list(more) == ["cherry", "melon", "lime"] and more["melon"] == [1.0, 0.0, 1.0, 1.0]
    page = classify_for_page(predictor, _image(), more, method="attention", top_k=None)
    assert {"cherry", "melon", "lime"} <= {r[1] for r in page["classes"]}
    assert all(r[4] == "defined on this page" for r in page["classes"] if r[1] in more)


def test_visitor_errors_are_clear(predictor, tmp_path) -> None:
    with pytest.raises(AttributeMatrixError, match="name"):
        add_class(predictor, {}, "  ", ["red"])
    with pytest.raises(AttributeMatrixError, match="at least one"):
        add_class(predictor, {}, "x", [])
    with pytest.raises(AttributeMatrixError, match="unknown attributes"):
        add_class(predictor, {}, "x", ["purple"])
    with pytest.raises(ImageError, match="no image yet"):
        classify_for_page(predictor, None, {})
    blank = Image.new("RGBA", (50, 50), (0, 0, 0, 0))  # an untouched sketchpad
    with pytest.raises(ImageError, match="no image yet"):
        classify_for_page(predictor, {"composite": blank, "layers": []}, {})
    drawn = blank.copy()
    drawn.paste((255, 0, 0, 255), (10, 10, 30, 30))
    rgb = page_image({"composite": drawn})
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255) and rgb.getpixel((20, 20)) == (255, 0, 0)
    bad = tmp_path / "bad.csv"
    bad.write_text("class,round,red\nx,1,0\n")
    with pytest.raises(AttributeMatrixError):
        add_classes_from_csv(predictor, {}, bad)


def test_uploads_arrive_as_files_and_bad_ones_get_zeromamba_errors(predictor, tmp_path) -> None:
    from zeromamba.webapp import APP_MAX_PIXELS

    good = tmp_path / "upload" / "photo.png"
    good.parent.mkdir()
    _image().save(good)
    page = classify_for_page(predictor, str(good), {}, method="gradient", top_k=2)
    assert [r[1] for r in page["classes"]] == predictor.classify(good, top_k=2).names
    notes = tmp_path / "upload" / "notes.png"
    notes.write_text("not a picture")
    with pytest.raises(ImageError) as e:  # named as the visitor knows it, not by the server's folder
        classify_for_page(predictor, str(notes), {})
    assert str(e.value) == "notes.png is not an image PIL can read; convert it to JPEG or PNG"
    bomb = tmp_path / "upload" / "bomb.png"
    Image.new("1", (7000, 7000)).save(bomb)
    with pytest.raises(
        ImageError, match=f"^bomb.png has 7000 x 7000 = 49,000,000 pixels, over the pixel limit of {APP_MAX_PIXELS:,}"
    ):
        page_image(str(bomb))
    with pytest.raises(ImageError, match="data: URL; upload the image file instead"):
        page_image("data:image/png;base64,AAAA")
