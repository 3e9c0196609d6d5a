"""``zeromamba.BatchClassifier`` on every batch form the engines hand it (a dict of numpy arrays as
Ray Data does, a dict of lists as ``datasets`` does, a pyarrow Table, a pandas DataFrame) and every
image form (pixels, PIL images, encoded bytes, ``{"bytes", "path"}`` dicts, paths): the predictor's
own answers, unreadable images as rows with their error, the input columns kept, cheap to pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zeromamba
from zeromamba.errors import ConfigError
from zeromamba.record_table import RESULT_COLUMNS

from .batch_support import assert_same_predictions, draw_collection, require

COUNT = 6


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return draw_collection(tmp_path_factory.mktemp("batch"), COUNT, seed=3)


@pytest.fixture(scope="module")
def classifier() -> zeromamba.BatchClassifier:
    return zeromamba.BatchClassifier("shapes-zsl", top_k=3, batch_size=4, with_attribute_values=True)


@pytest.fixture(scope="module")
def expected(classifier: zeromamba.BatchClassifier, images: list[Path]) -> list[dict]:
    """The records of the same images, classified by the predictor from their paths."""
    predictor = classifier.predictor
    results = predictor.classify_iter([str(p) for p in images], top_k=3, with_attribute_values=True)
    return [r.to_record() for r in results]


def _png(path: Path) -> bytes:
    return path.read_bytes()


def _missing(value: object) -> bool:
    """``None``, or the NaN pandas holds for it."""
    return value is None or (isinstance(value, float) and value != value)


def _check_rows(columns: dict, expected: list[dict]) -> None:
    for i, record in enumerate(expected):
        assert _missing(columns["error"][i]) and columns["class"][i] == record["predictions"][0]["class"]
        assert columns["score"][i] == pytest.approx(record["predictions"][0]["score"], rel=1e-6)
        assert columns["low_confidence"][i] == record["low_confidence"]
        assert columns["num_classes"][i] == 36 and columns["ranked_by"][i] == "calibrated"
        assert_same_predictions(list(columns["predictions"][i]), record["predictions"])
        assert list(columns["attribute_values"][i]) == pytest.approx(record["attribute_values"], rel=1e-5, abs=1e-6)


def test_a_dict_of_numpy_arrays_as_ray_data_gives_it(classifier, images, expected) -> None:
    pixels = np.empty(COUNT, dtype=object)  # images of several sizes: an object column of H x W x 3 arrays
    for i, p in enumerate(images):
        pixels[i] = np.asarray(Image.open(p).convert("RGB"))
    batch = {"image": pixels, "id": np.arange(COUNT)}
    out = classifier(batch)
    assert out["image"] is pixels and list(out["id"]) == list(range(COUNT))  # the input columns, untouched
    assert set(RESULT_COLUMNS) | {"attribute_values"} <= set(out)
    assert all(isinstance(out[c], np.ndarray) and len(out[c]) == COUNT for c in RESULT_COLUMNS)
    _check_rows(out, expected)


def test_a_dict_of_lists_as_datasets_gives_it_with_an_unreadable_row(classifier, images, expected) -> None:
    # datasets' Image(decode=False) cells: encoded bytes with their path; a broken file names its path
    cells = [{"bytes": _png(p), "path": str(p)} for p in images] + [{"bytes": b"\x89PNG broken", "path": "x.png"}]
    batch = {"image": cells, "path": [str(p) for p in images] + ["broken/x.png"]}
    out = classifier(batch)
    assert out is batch and isinstance(out["class"], list)  # the same batch with columns added
    _check_rows(out, expected)
    assert out["class"][-1] is None and out["predictions"][-1] is None and out["score"][-1] is None
    assert "broken/x.png" in out["error"][-1] and "not an image" in out["error"][-1]


def test_pil_images(classifier, images, expected) -> None:
    out = classifier({"image": [Image.open(p) for p in images]})
    _check_rows(out, expected)


def test_a_pyarrow_table_of_bytes(classifier, images, expected) -> None:
    require("pyarrow")
    import pyarrow as pa

    table = pa.table({"bytes": [_png(p) for p in images], "n": list(range(COUNT))})
    out = classifier(table)
    assert isinstance(out, pa.Table) and out.column_names[:2] == ["bytes", "n"]
    assert out.schema.field("predictions").type.value_type.field("score").type == pa.float64()
    _check_rows(out.to_pydict(), expected)


def test_a_pandas_frame_of_paths_and_a_missing_file(classifier, images, expected) -> None:
    require("pandas")
    import pandas as pd

    frame = pd.DataFrame({"path": [str(p) for p in images] + ["/no/such/file.png"]})
    out = classifier(frame)
    assert isinstance(out, pd.DataFrame) and list(out["path"]) == list(frame["path"])
    assert "class" not in frame  # the caller's frame is left as it was
    _check_rows({c: list(out[c]) for c in out.columns}, expected)
    assert "not found: /no/such/file.png" in out["error"].iloc[-1]


def test_it_pickles_its_settings_not_the_model(classifier, images) -> None:
    assert classifier.predictor is not None  # loaded by the tests above
    data = pickle.dumps(classifier)
    assert len(data) < 10_000  # the shipped model's weights alone are ~100x this
    again = pickle.loads(data)
    assert again._predictor is None and again.top_k == 3 and again.model == "shapes-zsl"
    assert again({"path": [str(images[0])]})["class"][0] == classifier({"path": [str(images[0])]})["class"][0]


def test_classes_from_a_file_travel_with_it(images, tmp_path: Path) -> None:
    from zeromamba.data.shapes import SHAPES_ATTRIBUTES

    rows = {"round red thing": {"circle", "red", "solid"}, "blue striped bar": {"bar", "blue", "striped"}}
    csv = tmp_path / "classes.csv"
    lines = ["class," + ",".join(SHAPES_ATTRIBUTES)]
    lines += [f"{n}," + ",".join("1" if a in on else "0" for a in SHAPES_ATTRIBUTES) for n, on in rows.items()]
    csv.write_text("\n".join(lines) + "\n")
    classifier = pickle.loads(pickle.dumps(zeromamba.BatchClassifier("shapes-zsl", attributes=csv, top_k=2)))
    csv.unlink()  # the contents were read where it was built
    out = classifier({"path": [str(images[0])]})
    assert out["num_classes"][0] == 2 and out["class"][0] in rows
    direct = zeromamba.from_pretrained("shapes-zsl").classify(str(images[0]), attributes=classifier.attributes, top_k=2)
    assert out["class"][0] == direct.label and out["score"][0] == pytest.approx(direct.score, rel=1e-6)


def test_bytes_are_an_input_of_the_predictor_too(classifier, images, expected) -> None:
    result = classifier.predictor.classify(_png(images[0]), top_k=3)
    assert result.label == expected[0]["predictions"][0]["class"]


@pytest.mark.parametrize(
    ("kwargs", "batch", "message"),
    [
        ({"top_k": 0}, None, "top_k must be"),
        ({"batch_size": 0}, None, "batch_size must be"),
        ({}, {"pixels": [1]}, "none of the columns image, bytes, path, url"),
        ({"column": "pic"}, {"image": [1]}, "no column 'pic'"),
        ({}, [1, 2], "a batch must be a dict of columns"),
    ],
)
def test_bad_settings_and_batches_say_what_to_do(kwargs, batch, message) -> None:
    with pytest.raises(ConfigError, match=message):
        zeromamba.BatchClassifier("shapes-zsl", **kwargs)(batch)


def test_a_model_that_is_not_there_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(zeromamba.ModelNotAvailableError):
        zeromamba.BatchClassifier(tmp_path / "no-such-folder")
