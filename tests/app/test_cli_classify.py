"""``zeromamba classify`` / ``zeromamba explain`` on a tiny model saved with ``save_pretrained``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from zeromamba import Predictor
from zeromamba.cli import main

A = 6
ATTR_NAMES = [f"attr_{i}" for i in range(A)]
CLASS_NAMES = ["cat", "dog", "fox", "owl"]


@pytest.fixture(scope="module")
def saved(tiny_predictor, tmp_path_factory) -> tuple[Predictor, str, list[str]]:
    predictor = tiny_predictor(CLASS_NAMES, ATTR_NAMES, input_size=64)
    root = tmp_path_factory.mktemp("cli")
    folder = root / "model"
    predictor.save_pretrained(folder)
    rng = np.random.default_rng(5)
    images = []
    for i in range(3):
        path = root / f"im{i}.jpg"
        Image.fromarray(rng.integers(0, 255, size=(50, 60 + 10 * i, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    return predictor, str(folder), images


def test_classify_json_matches_the_api(saved, capsys):
    predictor, folder, images = saved
    assert main(["classify", *images, "--model", folder, "--top-k", "3", "--json", "--batch-size", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    want = predictor.classify(images, top_k=3)
    assert [r["indices"] for r in data["results"]] == [r.indices for r in want]
    assert [r["names"] for r in data["results"]] == [r.names for r in want]
    assert data["results"][0]["gamma"] == 0.3
    for got, exp in zip(data["results"], want):
        assert got["scores"] == pytest.approx(exp.scores, abs=1e-4)


def test_classify_table_and_options(saved, capsys, tmp_path):
    predictor, folder, images = saved
    assert main(["classify", images[0], "--model", folder, "--gamma", "0"]) == 0
    out = capsys.readouterr().out
    assert "uncalibrated" in out and images[0] in out and "rank" in out
    # any classes, from a CSV in the model's attribute space
    csv = tmp_path / "animals.csv"
    csv.write_text("class," + ",".join(ATTR_NAMES) + "\nzebra,1,0,0,1,0,1\nhorse,0,1,1,0,1,0\n")
    assert main(["classify", *images[:2], "--model", folder, "--attributes", str(csv), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(set(r["names"]) == {"zebra", "horse"} for r in data["results"])
    names = tmp_path / "names.txt"
    names.write_text("Z\nH\n")
    assert main(["classify", images[0], "--model", folder, "--attributes", str(csv), "--class-names", str(names)]) == 0
    assert "Z" in capsys.readouterr().out


def test_cli_errors_are_one_line(saved, capsys, tmp_path):
    _, folder, images = saved
    assert main(["classify", str(tmp_path / "missing.jpg"), "--model", folder]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zeromamba: error:") and "not found" in err and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    bad.write_text("zebra,1,0\n")
    assert main(["classify", images[0], "--model", folder, "--attributes", str(bad)]) == 1
    assert "columns" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["classify", images[0], "--model", folder, "--top-k", "0"])
    assert info.value.code == 2


def test_explain_writes_a_png(saved, capsys, tmp_path):
    _, folder, images = saved
    out = tmp_path / "figs" / "why.png"
    assert main(["explain", images[1], "--out", str(out), "--model", folder, "--top-k", "3"]) == 0
    text = capsys.readouterr()
    assert "attr_" in text.out and "wrote" in text.err
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > 4 * 200
    assert main(["explain", images[1], "--out", str(out), "--model", folder, "--target", "attr_2", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["index"] for a in data["attributes"]] == [2, 1]
