"""``zeromamba classify --format csv`` against spreadsheet formula injection: class names
and image paths that start like a formula are written with a leading apostrophe (OWASP's advice),
numbers stay numbers, and the file still reads back with the csv module."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zeromamba.results import spreadsheet_safe

HOSTILE = ['=HYPERLINK("http://127.0.0.1/x","click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


@pytest.mark.parametrize("cell", HOSTILE)
def test_a_formula_start_gets_an_apostrophe(cell: str) -> None:
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["zebra", "red striped bar", "a=b", "", "'quoted", -0.25, 3, None, True])
def test_other_cells_are_kept(cell: object) -> None:
    assert spreadsheet_safe(cell) == cell


def test_classify_csv_escapes_hostile_names_and_paths(tiny_predictor, cli, tmp_path: Path) -> None:
    names = ['=HYPERLINK("http://127.0.0.1/x","click")', "+cmd", "@at", "plain, with comma"]
    predictor = tiny_predictor(names, ["a", "b", "c"], input_size=32, seen=(0,))
    model = predictor.save_pretrained(tmp_path / "model")
    image = tmp_path / "=1+2.png"  # a file name from outside, given relative to the working folder
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(image)
    out = cli("classify", image.name, "--model", model, "--format", "csv", "--top-k", "4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 1 and rows[0]["image"] == "'=1+2.png"
    shown = {rows[0][f"class_{r}"] for r in range(1, 5)}
    assert shown == {"'" + names[0], "'+cmd", "'@at", "plain, with comma"}
    # no cell of the file starts like a formula; scores are plain numbers
    cells = [c for row in csv.reader(io.StringIO(out.stdout)) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    float(rows[0]["score_1"]), float(rows[0]["calibrated_1"])
