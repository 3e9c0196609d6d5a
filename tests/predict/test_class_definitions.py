"""Classes defined by attribute name (a dict of dicts, a JSON file), class names unique from every
source, and class-attribute CSVs read as RFC 4180 (what csv.writer and spreadsheets write), with
messages that name the actual problem."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from zeromamba.classes import load_class_attributes, read_attribute_table
from zeromamba.errors import AttributeMatrixError

ATTRS = ["red", "green", "blue", "circle", "triangle", "bar", "solid", "striped", "dotted"]


def _vector(*on: str) -> list[float]:
    return [1.0 if a in on else 0.0 for a in ATTRS]


@pytest.fixture(scope="module")
def predictor(tiny_predictor):  # noqa: ANN001, ANN201
    return tiny_predictor(["a", "b", "c"], ATTRS, input_size=32)


def test_a_dict_of_attribute_names_is_the_same_classes_as_their_vectors(predictor) -> None:
    by_name = {
        "red disc": {"red": 1, "circle": 1, "solid": 1},
        "green bar": {"Green": 1.0, "BAR": True, "striped": 0.5},
    }
    by_vector = {"red disc": _vector("red", "circle", "solid"), "green bar": _vector("green", "bar")}
    by_vector["green bar"][ATTRS.index("striped")] = 0.5
    got, names = load_class_attributes(by_name, len(ATTRS), attribute_names=ATTRS)
    want, _ = load_class_attributes(by_vector, len(ATTRS))
    assert names == ["red disc", "green bar"] and torch.equal(got, want)  # unnamed attributes are 0
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    a = predictor.classify(image, attributes=by_name, top_k=None)
    b = predictor.classify(image, attributes=by_vector, top_k=None)
    assert a.names == b.names and a.scores == pytest.approx(b.scores, abs=1e-6)
    own = type(predictor)(predictor.model, class_attributes=by_name, attribute_names=ATTRS)
    assert own.class_names == ["red disc", "green bar"] and torch.equal(own.class_attributes, want)
    mixed, _ = load_class_attributes(
        {"red disc": by_name["red disc"], "green bar": by_vector["green bar"]}, len(ATTRS), attribute_names=ATTRS
    )
    assert torch.equal(mixed, want)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"x": {"red": 1, "cirlce": 1}}, r"class 'x': unknown attribute\(s\) 'cirlce' \(did you mean 'circle'\?\)"),
        ({"x": {"red": 1, "purple": 1}}, r"unknown attribute\(s\) 'purple'; the model's attributes are red, green"),
        ({"x": {"red": 1, "Red": 1}}, r"class 'x' gives attribute 'red' more than once"),
        ({"x": {"red": "yes"}}, r"class 'x', attribute 'red': the value must be a number .*got 'yes'"),
        ({"x": {"red": 0, "circle": 0}}, r"row 0 \('x'\) .* is all zeros"),
        ({"x": {"red": float("nan")}}, "NaN or inf"),
    ],
)
def test_named_definitions_that_cannot_be_read_as_meant(definition: dict, message: str) -> None:
    with pytest.raises(AttributeMatrixError, match=message):
        load_class_attributes(definition, len(ATTRS), attribute_names=ATTRS)


def test_names_need_a_model_with_attribute_names() -> None:
    with pytest.raises(AttributeMatrixError, match="names its attributes, but the model has no attribute names"):
        load_class_attributes({"x": {"red": 1}}, len(ATTRS))


def test_a_json_file_of_classes(tmp_path: Path) -> None:
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"red disc": {"red": 1, "circle": 1, "solid": 1}, "blue": _vector("blue", "bar")}))
    got, names = load_class_attributes(path, len(ATTRS), attribute_names=ATTRS)
    want, _ = load_class_attributes([_vector("red", "circle", "solid"), _vector("blue", "bar")], len(ATTRS))
    assert names == ["red disc", "blue"] and torch.equal(got, want)
    cases = {
        '{"x": {"red": 1}, "x": {"blue": 1}}': "the key 'x' appears twice in one object",  # json keeps the last
        '{"x": {"red": 1, "red": 0}}': "the key 'red' appears twice",
        '{"x": {"red": NaN}}': "NaN is not a number JSON allows",
        '{"x": {"red": 1}': r"is not valid JSON \(line 1, column 17",
        "[[1, 0]]": "expected a JSON object of classes",
        "{}": "got an empty object",
        '{"x": "red"}': "class 'x' must be an object of attribute values",
        '{"x": {"rde": 1}}': r"classes.json: class 'x': unknown attribute\(s\) 'rde' \(did you mean 'red'\?\)",
        "[" * 100_000: "cannot be read as class definitions",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(AttributeMatrixError, match=message) as e:
            load_class_attributes(path, len(ATTRS), attribute_names=ATTRS)
        assert str(path) in str(e.value)


def test_duplicate_class_names_from_every_source(predictor, tmp_path: Path) -> None:
    v = _vector("red", "circle")
    with pytest.raises(AttributeMatrixError, match=r"duplicate class names '1' \(2 times\)"):
        load_class_attributes({1: v, "1": _vector("blue")}, len(ATTRS))
    with pytest.raises(AttributeMatrixError, match=r"class_names: duplicate class names 'same' \(2 times\)"):
        load_class_attributes([v, v, _vector("blue")], len(ATTRS), class_names=["same", "same", "other"])
    with pytest.raises(AttributeMatrixError, match="duplicate class names 'same'"):
        type(predictor)(predictor.model, class_attributes=[v, _vector("blue")], class_names=["same", "same"])
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    with pytest.raises(AttributeMatrixError, match="duplicate class names 'a'"):
        predictor.classify(image, class_names=["a", "a", "b"])
    names = tmp_path / "names.txt"
    names.write_text("a\nb\na\n")
    with pytest.raises(AttributeMatrixError, match=f"the class names of {names}: duplicate class names 'a'"):
        predictor.classify(image, class_names=names)
    rows = tmp_path / "rows.csv"
    rows.write_text("class," + ",".join(ATTRS) + "\nx," + ",".join("1" * 9) + "\nx," + ",".join("0" * 8) + ",1\n")
    with pytest.raises(AttributeMatrixError, match="duplicate class rows: x"):
        load_class_attributes(rows, len(ATTRS), attribute_names=ATTRS)


def test_a_csv_without_a_class_name_column_is_told_so(tmp_path: Path) -> None:
    path = tmp_path / "no_names.csv"
    path.write_text(",".join(ATTRS) + "\n" + ",".join(map(str, map(int, _vector("red", "circle")))) + "\n")
    with pytest.raises(
        AttributeMatrixError, match="the header has no class-name column: its first column, 'red', is an"
    ):
        load_class_attributes(path, len(ATTRS), attribute_names=ATTRS)
    path.write_text(",".join(ATTRS) + "\nred disc," + ",".join(map(str, map(int, _vector("red", "circle")))) + "\n")
    with pytest.raises(AttributeMatrixError, match=r"the header has no class-name column: its 9 cells all title"):
        load_class_attributes(path, len(ATTRS), attribute_names=ATTRS)
    path.write_text(",".join(map(str, map(int, _vector("red", "circle")))) + "\n")  # no header, no names
    with pytest.raises(AttributeMatrixError, match="no class-name column: every row starts with a number"):
        load_class_attributes(path, len(ATTRS), attribute_names=ATTRS)


NAMES = [
    'He said "hi"',
    "apple, red",
    "two\nlines",
    '=HYPERLINK("http://x","y")',
    "+1",
    "-minus",
    "@at",
    "tab\there",
    "semi;colon",
]


@pytest.mark.parametrize("dialect", ["excel", "excel-tab", "semicolon"])
def test_csv_writer_files_round_trip(tmp_path: Path, dialect: str) -> None:
    path = tmp_path / f"{dialect}.csv"
    values = np.random.default_rng(0).random((len(NAMES), len(ATTRS))).round(4) + 0.01
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter=";") if dialect == "semicolon" else csv.writer(f, dialect)
        writer.writerow(["class", *ATTRS])
        writer.writerows([name, *row] for name, row in zip(NAMES, values.tolist()))
    table = read_attribute_table(path)
    assert table.class_names == NAMES and table.attribute_names == ATTRS and np.array_equal(table.values, values)
    assert table.delimiter == {"excel": ",", "excel-tab": "\t", "semicolon": ";"}[dialect]
    got, names = load_class_attributes(path, len(ATTRS), attribute_names=ATTRS, normalize=False)
    assert names == NAMES and np.allclose(got.numpy(), values)


def test_the_dialect_is_not_guessed_from_the_header_alone(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    # a header with semicolons in its names, the rows plain RFC 4180 with commas
    path.write_text('class,"red;ish",round\n"He said ""hi""",1,0\nlime,0,1\n')
    table = read_attribute_table(path)
    assert table.class_names == ['He said "hi"', "lime"] and table.attribute_names == ["red;ish", "round"]
    # comments and blank lines between rows are skipped, a '#' or a blank line inside a quoted name is kept
    path.write_text('class,red,round\n# a comment\n\n"a\n\n# b",1,0\n')
    assert read_attribute_table(path).class_names == ["a\n\n# b"]
    # a '#' line shaped like a row (csv.writer leaves a name "#1 pick" unquoted) is skipped, and said so
    for text in ("class,red,round\n#1 pick,1,0\nlime,0,1\n", 'class,red,round\n#1 pick,1,0\n"lime",0,1\n'):
        path.write_text(text)
        with pytest.warns(UserWarning, match=r"skipped 1 line\(s\) starting with '#' .*first: '#1 pick,1,0'"):
            assert read_attribute_table(path).class_names == ["lime"]
    path.write_text('class,red,round\n"apple,1,0\n')
    with pytest.raises(AttributeMatrixError, match=r"t.csv, line 2: cannot read the row \(unexpected end of data\)"):
        read_attribute_table(path)
    path.write_text('class,red,round\n"apple"s,1,0\n')
    with pytest.raises(AttributeMatrixError, match="must be quoted, with quotes inside doubled"):
        read_attribute_table(path)
    path.write_text("class;red;round\napple;0,5;1\n")
    with pytest.raises(AttributeMatrixError, match=r"'0,5' .*write decimals with a point"):
        read_attribute_table(path)
