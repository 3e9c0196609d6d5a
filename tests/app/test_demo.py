"""``zeromamba demo``: offline, under a minute, a table, an explanation PNG, a class defined on the spot."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PIL import Image

import zeromamba
from zeromamba.cli import main
from zeromamba.demo import DEFAULT_SEED, demo_images, parse_attribute_words, training_renderer
from zeromamba.errors import ZeroMambaError


def test_demo_runs_offline_and_writes_the_png(
    no_network: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "why.png"
    t0 = time.perf_counter()
    assert main(["demo", "--out", str(out)]) == 0
    took = time.perf_counter() - t0
    text = capsys.readouterr().out
    assert took < 60, f"the demo took {took:.1f} s"
    assert "true class" in text and "prediction" in text and str(out) in text
    assert "my class: green striped triangle" in text and "-> recognised" in text
    assert "6 of 6 correct" in text  # the shipped model on images drawn as its training images were
    # the PNG: the image and the maps of the predicted class's three attributes, as Predictor.explain renders them
    predictor = zeromamba.from_pretrained("shapes-zsl")
    renderer = training_renderer(predictor.preprocess)
    expected = predictor.explain(demo_images(DEFAULT_SEED, 1, renderer)[0][1], top_k=3).render()
    with Image.open(out) as im:
        im.load()
        assert im.format == "PNG" and im.size == expected.size
        assert im.size[0] > im.size[1] > 200  # four panels in a row


def test_demo_json_and_a_user_class(no_network: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the default PNG goes to the current folder
    assert main(["demo", "--json", "--n", "4", "--seed", "11", "--define", "green,striped,triangle"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert Path(r["explanation"]) == tmp_path / "zeromamba-demo.png" and Path(r["explanation"]).is_file()
    assert len(r["images"]) == 4 and all(not x["seen"] or not x["correct"] for x in r["images"])
    assert r["accuracy"] >= 0.5
    d = r["defined"]
    assert d["attributes"] == {"green": 1.0, "striped": 1.0, "triangle": 1.0} and not d["seen_in_training"]
    assert d["recognised"] and d["predicted"] == "my class: green striped triangle" and d["candidates"] == 28


def test_attribute_words() -> None:
    assert parse_attribute_words("Yellow  dotted circle") == {"yellow": 1.0, "dotted": 1.0, "circle": 1.0}
    with pytest.raises(ZeroMambaError, match="exactly one shape"):
        parse_attribute_words("red striped")
    with pytest.raises(ZeroMambaError, match="exactly one colour"):
        parse_attribute_words("red blue striped bar")
    with pytest.raises(ZeroMambaError, match="unknown attribute words"):
        parse_attribute_words("red striped bar sparkly")
    assert main(["demo", "--define", "purple bar"]) == 1  # a clear error, not a traceback


def test_the_demo_draws_like_the_training_images_of_its_model() -> None:
    # a squashing model is the first demo model (zeromamba_nano): square 64 px images of the first renderer
    assert training_renderer({"crop_mode": "squash", "input_size": (3, 64, 64)}) == "plain"
    assert training_renderer({"crop_mode": "letterbox", "input_size": (3, 80, 80)}) == "varied"
    plain, varied = demo_images(DEFAULT_SEED, 9, "plain"), demo_images(DEFAULT_SEED, 9, "varied")
    assert [name for name, _ in plain] == [name for name, _ in varied]  # the same unseen classes, once each
    assert len({name for name, _ in plain}) == 9
    assert all(image.size == (64, 64) for _, image in plain)
    assert len({image.size for _, image in varied}) > 1  # canvases of many sizes and aspect ratios
    with pytest.raises(ValueError, match="renderer must be"):
        demo_images(DEFAULT_SEED, 1, "sketchy")
