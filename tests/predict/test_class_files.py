"""Class-attribute files are read by name, never silently by the wrong columns, and every file kind
says what it expected when it gets something else."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from zeromamba.classes import load_class_attributes, load_class_names, match_columns
from zeromamba.errors import AttributeMatrixError

ATTRS = ["circle", "triangle", "bar", "red", "green", "has_stripes"]
CLASSES = ["red circle", "green striped bar", "red triangle"]
ROWS = np.array([[1, 0, 0, 1, 0, 0], [0, 0, 1, 0, 1, 1], [0, 1, 0, 1, 0, 0]], dtype=float)


def write_csv(path: Path, header: list[str] | None, rows: np.ndarray = ROWS, names: list[str] = CLASSES) -> Path:
    lines = [] if header is None else ["class," + ",".join(header)]
    lines += [n + "," + ",".join(f"{v:g}" for v in row) for n, row in zip(names, rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def predictor(tiny_predictor):  # noqa: ANN001, ANN201
    return tiny_predictor(["a", "b"], ATTRS, input_size=32)


def test_columns_are_matched_by_name_in_any_order_case_and_separators(predictor, tmp_path: Path) -> None:
    expected, _ = load_class_attributes(ROWS, len(ATTRS))
    order = [5, 2, 0, 4, 1, 3]
    spelled = ["Has Stripes", "BAR", "circle", "Green", "triangle", "red"]  # case and separators differ
    shuffled = write_csv(tmp_path / "shuffled.csv", [spelled[order.index(i)] for i in order], ROWS[:, order])
    got, names = load_class_attributes(shuffled, len(ATTRS), attribute_names=ATTRS)
    assert names == CLASSES and torch.allclose(got, expected)
    # the predictor scores with the right columns
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    a = predictor.classify(image, attributes=shuffled, top_k=None)
    b = predictor.classify(image, attributes=dict(zip(CLASSES, ROWS)), top_k=None)
    assert a.names == b.names and a.scores == pytest.approx(b.scores, abs=1e-6)


def test_a_misspelt_or_missing_attribute_is_an_error_naming_the_file(tmp_path: Path) -> None:
    misspelt = write_csv(tmp_path / "typo.csv", ["circle", "triangle", "bar", "rde", "green", "has_stripes"])
    with pytest.raises(AttributeMatrixError) as e:
        load_class_attributes(misspelt, len(ATTRS), attribute_names=ATTRS)
    msg = str(e.value)
    assert str(misspelt) in msg and "unknown column(s) 'rde' (did you mean 'red'?)" in msg
    assert "no column for attribute(s) 'red'" in msg
    missing = write_csv(tmp_path / "missing.csv", ATTRS[:5], ROWS[:, :5])
    with pytest.raises(AttributeMatrixError, match=r"missing.csv: .*no column for attribute\(s\) 'has_stripes'"):
        load_class_attributes(missing, len(ATTRS), attribute_names=ATTRS)
    extra = write_csv(tmp_path / "extra.csv", [*ATTRS, "blue"], np.c_[ROWS, np.ones(3)])
    with pytest.raises(AttributeMatrixError, match="unknown column\\(s\\) 'blue'"):
        load_class_attributes(extra, len(ATTRS), attribute_names=ATTRS)
    twice = write_csv(tmp_path / "twice.csv", ["circle", *ATTRS[1:5], "circle"])
    with pytest.raises(AttributeMatrixError, match="names 'circle' more than once"):
        load_class_attributes(twice, len(ATTRS), attribute_names=ATTRS)


def test_ambiguous_loose_names_are_not_guessed() -> None:
    # two columns that only differ in case cannot both be "red"
    with pytest.raises(AttributeMatrixError, match="unknown column"):
        match_columns(["Red", "RED", "circle"], ["red", "circle", "bar"], "f.csv")
    assert match_columns(["red", "Red"], ["Red", "red"], "f.csv") == [1, 0]  # exact names win


def test_a_file_without_header_is_read_by_position_only_at_the_right_width(tmp_path: Path) -> None:
    bare = write_csv(tmp_path / "bare.csv", None)
    got, names = load_class_attributes(bare, len(ATTRS), attribute_names=ATTRS)
    assert names == CLASSES and torch.allclose(got, load_class_attributes(ROWS, len(ATTRS))[0])
    narrow = write_csv(tmp_path / "narrow.csv", None, ROWS[:, :5])
    with pytest.raises(AttributeMatrixError) as e:
        load_class_attributes(narrow, len(ATTRS), attribute_names=ATTRS)
    assert str(narrow) in str(e.value) and "5 attribute column(s)" in str(e.value) and "predicts 6" in str(e.value)
    assert "circle, triangle" in str(e.value)  # the expected attributes are listed


def test_a_header_that_cannot_be_checked_is_read_in_order_with_a_warning(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "named.csv", ATTRS)
    with pytest.warns(UserWarning, match="no attribute names, so the header cannot be checked"):
        got, _ = load_class_attributes(path, len(ATTRS))  # a model without attribute names
    assert torch.allclose(got, load_class_attributes(ROWS, len(ATTRS))[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_class_attributes(path, len(ATTRS), attribute_names=ATTRS)  # names to check: no warning


def test_each_file_kind_says_what_it_expected(tmp_path: Path) -> None:
    names_list = tmp_path / "classes.txt"
    names_list.write_text("zebra\nhorse\n")
    with pytest.raises(AttributeMatrixError, match="one column: it looks like a list of names") as e:
        load_class_attributes(names_list, len(ATTRS), attribute_names=ATTRS)
    assert "class,<attribute 1>" in str(e.value)
    table = write_csv(tmp_path / "table.csv", None)
    with pytest.raises(AttributeMatrixError, match="looks like a class-attribute table.*one class name per line"):
        load_class_names(table)
    checkpoint = tmp_path / "model.pth"
    checkpoint.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(AttributeMatrixError, match=r"a \.pth file is not a class-attribute matrix.*\.npy"):
        load_class_attributes(checkpoint, len(ATTRS))
    binary = tmp_path / "names.bin"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(AttributeMatrixError, match="is not text; the class names must be a text file"):
        load_class_names(binary)
    npy = tmp_path / "m.npy"
    np.save(npy, ROWS[:, :4])
    with pytest.raises(AttributeMatrixError, match=f"matrix of {npy} has 4 columns but the model predicts 6"):
        load_class_attributes(npy, len(ATTRS))
    with pytest.raises(AttributeMatrixError, match="a folder"):
        load_class_attributes(tmp_path, len(ATTRS))
