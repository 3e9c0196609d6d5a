"""Manifests (a Parquet, CSV or JSON Lines list of image paths or URLs): which column is read, paths
relative to the manifest, every broken manifest one DataError naming the file and the row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zeromamba.errors import DataError
from zeromamba.manifests import expand_manifests, is_manifest, read_manifest


def test_a_csv_manifest_lists_paths_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    manifest = tmp_path / "lists" / "photos.csv"
    manifest.write_text("label,path\ncat,a.jpg\ndog,/data/b.png\nfox,https://example.org/c.jpg\n,sub/d.png\n")
    assert read_manifest(manifest) == [
        str(tmp_path / "lists" / "a.jpg"), "/data/b.png", "https://example.org/c.jpg", str(tmp_path / "lists/sub/d.png")
    ]  # fmt: skip


def test_a_jsonl_manifest_of_objects_or_strings(tmp_path: Path) -> None:
    objects = tmp_path / "urls.jsonl"
    lines = [json.dumps({"url": f"https://example.org/{i}.jpg", "n": i}) for i in range(3)]
    objects.write_text("\n".join(lines) + "\n\n")
    assert read_manifest(objects) == [f"https://example.org/{i}.jpg" for i in range(3)]
    strings = tmp_path / "names.jsonl"
    strings.write_text('"x.png"\n"y.png"\n')
    assert read_manifest(strings) == [str(tmp_path / "x.png"), str(tmp_path / "y.png")]


def test_a_parquet_manifest(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")  # the ray / datasets extras install it
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"file_name": ["a.png", "b.png"], "size": [1, 2]}), tmp_path / "m.parquet")
    assert read_manifest(tmp_path / "m.parquet") == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


def test_one_column_of_any_name(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("photo\na.png\n")
    assert read_manifest(tmp_path / "m.csv") == [str(tmp_path / "a.png")]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "label,size\ncat,1\n", r"no column named path, url, file_name among its columns \(label, size\)"),
        ("m.csv", "path\na.png\n\n  \n", "row 2: 'path' is empty"),
        ("m.jsonl", '{"path": "a.png"}\n{"path": 3}\n', "row 2: 'path' is 3"),
        ("m.jsonl", '{"path": "a.png"}\nnot json\n', "line 2: not JSON"),
        ("m.jsonl", "[1, 2]\n", "line 1: expected an object"),
    ],
)
def test_broken_manifests_name_the_row(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        read_manifest(tmp_path / name)


def test_a_missing_manifest_and_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        read_manifest(tmp_path / "dir.csv")


def test_sources_with_manifests_among_images(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path\nb.png\nc.png\n")
    sources = ["a.png", str(tmp_path / "m.csv"), "https://example.org/list.csv", "d.png"]
    assert is_manifest(sources[1]) and not is_manifest(sources[2]) and not is_manifest("x.png")
    assert expand_manifests(sources) == ["a.png", str(tmp_path / "b.png"), str(tmp_path / "c.png"), *sources[2:]]
