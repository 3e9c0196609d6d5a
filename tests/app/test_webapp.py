"""The web page's logic without a browser: what the page shows for an image (the low-confidence flag
as large as the class), classes defined on the page or from a CSV or JSON file within the page's
limits, and the errors a visitor can cause."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zeromamba.errors import AttributeMatrixError, ImageError, ZeroMambaError
from zeromamba.webapp import add_class, add_classes_from_csv, candidates, classify_for_page, page_image
from zeromamba.webapp_inputs import NOT_A_PROXY, PAGE_MAX_CLASS_BYTES, PAGE_MAX_CLASSES, stored_upload_path

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
    assert list(custom) == ["cherry"] and custom["cherry"].tolist() == [1.0, 1.0, 0.0, 0.0]
    matrix, names, seen = candidates(predictor, custom)
    assert names[-1] == "cherry" and seen[-1] is False and matrix.shape == (5, 4)
    # a page class with the same attribute profile as an own class replaces it
    same = {"my apple": (3 * predictor.class_attributes[0]).tolist()}  # apple's profile, at another scale
    _, names, _ = candidates(predictor, same)
    assert names == ["ball", "zebra", "tomato", "my apple"]
    csv = tmp_path / "classes.csv"
    csv.write_text("class,round,red,striped,big\nmelon,1,0,1,1\nlime,1,0,0,0\n")
    more = add_classes_from_csv(predictor, custom, csv)
    assert list(more) == ["cherry", "melon", "lime"] and more["melon"].tolist() == [1.0, 0.0, 1.0, 1.0]
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
    with pytest.raises(ImageError, match=NOT_A_PROXY):
        page_image("data:image/png;base64,AAAA")


def test_a_low_confidence_answer_says_so_as_large_as_the_class(predictor) -> None:
    page = classify_for_page(predictor, _image(), {}, method="gradient", top_k=3)
    result = predictor.classify(_image())
    assert result.low_confidence  # a random tiny model: near chance
    heading, flag = page["headline"].splitlines()[:2]
    assert heading == f"## {result.label}" and flag.startswith("## \\[LOW CONFIDENCE\\] near chance \\(probability")
    assert page["low_confidence"] and page["confidence_note"] == result.confidence_note
    # names from a model folder or a visitor are shown as text, not Markdown
    named = {"**bold** [x](http://e.invalid) <b>": np.ones(4, dtype=np.float32)}
    page = classify_for_page(predictor, _image(), named, method="gradient", top_k=None)
    if page["classes"][0][1] in named:
        assert "\\*\\*bold\\*\\* \\[x\\]\\(http://e\\.invalid\\) \\<b\\>" in page["headline"]


def test_the_pages_classes_are_bounded_and_unique(predictor, tmp_path) -> None:
    custom = add_class(predictor, {}, "cherry", ["round", "red"])
    with pytest.raises(AttributeMatrixError, match="'cherry' is already one of the classes defined on this page"):
        add_class(predictor, custom, "cherry", ["red"])
    with pytest.raises(AttributeMatrixError, match="'apple' is already one of the model's classes"):
        add_class(predictor, custom, "apple", ["red"])
    named = tmp_path / "classes.json"
    named.write_text('{"plum": {"round": 1, "Red": 0.5}, "cherry": {"red": 1}}')
    with pytest.raises(AttributeMatrixError, match="'cherry' is already one of the classes defined on this page"):
        add_classes_from_csv(predictor, custom, named)
    named.write_text('{"plum": {"round": 1, "Red": 0.5}}')
    assert add_classes_from_csv(predictor, custom, named)["plum"].tolist() == [1.0, 0.5, 0.0, 0.0]
    named.write_text('{"plum": {"round": 1, "rde": 1}}')
    with pytest.raises(AttributeMatrixError, match=r"^classes.json: class 'plum': unknown attribute\(s\) 'rde'"):
        add_classes_from_csv(predictor, custom, named)  # the file named as the visitor knows it
    many = {f"c{i}": np.ones(4, dtype=np.float32) for i in range(PAGE_MAX_CLASSES)}
    with pytest.raises(AttributeMatrixError, match=f"{PAGE_MAX_CLASSES + 1} classes: the page keeps at most"):
        add_class(predictor, many, "one more", ["red"])
    long = {"x" * (PAGE_MAX_CLASS_BYTES - 30): np.ones(4, dtype=np.float32)}
    with pytest.raises(AttributeMatrixError, match=f"the page keeps at most {PAGE_MAX_CLASS_BYTES:,} bytes"):
        add_class(predictor, long, "one more", ["red"])
    big = tmp_path / "big.csv"
    big.write_text("class,round,red,striped,big\n" + "".join(f"c{i},1,0,1,1\n" for i in range(200_000)))
    with pytest.raises(AttributeMatrixError, match=r"^big.csv is \d+\.\d MB: the page reads class files of at most"):
        add_classes_from_csv(predictor, {}, big)


def test_only_files_the_server_stored_are_read(tmp_path) -> None:
    folder = tmp_path / "uploads"
    (folder / "abc").mkdir(parents=True)
    stored = folder / "abc" / "photo.png"
    _image().save(stored)
    assert stored_upload_path({"path": str(stored), "url": "http://127.0.0.1:1/x.png"}, folder) == str(stored)
    assert stored_upload_path(None, folder) is None and stored_upload_path({"path": None}, folder) is None
    outside = tmp_path / "secret.png"
    _image().save(outside)
    (folder / "link.png").symlink_to(outside)
    for payload in (
        {"url": "http://127.0.0.1:1/a.png"},
        {"path": "http://127.0.0.1:1/a.png"},
        {"path": "file:///etc/hostname"},
        {"path": str(outside)},
        {"path": str(folder / "abc" / ".." / ".." / "secret.png")},
        {"path": str(folder / "link.png")},  # a link out of the folder
        {"path": str(folder / "abc")},  # a folder
    ):
        with pytest.raises(ZeroMambaError, match=NOT_A_PROXY):
            stored_upload_path(payload, folder)
    with pytest.raises(ImageError, match=NOT_A_PROXY):
        page_image("http://127.0.0.1:1/a.png")
