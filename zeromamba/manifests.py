"""Manifests: a Parquet, CSV or JSON Lines file that lists the images to classify, one path or URL a
row, for collections too large or too scattered for a folder or a glob.

The column read is ``path``, ``url`` or ``file_name`` (the first of these the file has), or the only
column of a one-column file. A relative path is relative to the manifest's folder (as
``file_name`` in a Hugging Face ``metadata.csv``), so a manifest travels with its images. A JSON
Lines manifest holds one object a line (``{"path": "a.jpg"}``) or one string a line.

A leaf: the standard library, and pyarrow for Parquet only (imported when a Parquet manifest is read).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import DataError
from .fileio import open_regular
from .sources import is_url

__all__ = ["MANIFEST_COLUMNS", "MANIFEST_SUFFIXES", "expand_manifests", "is_manifest", "read_manifest"]

#: the file name endings read as manifests (case-insensitive)
MANIFEST_SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".jsonl")
#: the columns that name the images, in the order they are looked for
MANIFEST_COLUMNS: tuple[str, ...] = ("path", "url", "file_name")


def is_manifest(source: Any) -> bool:
    """Whether ``source`` is a local file name with a manifest's ending (not a URL)."""
    return isinstance(source, str) and not is_url(source) and source.lower().endswith(MANIFEST_SUFFIXES)


def _choose_column(columns: Sequence[str], manifest: str) -> str:
    for name in MANIFEST_COLUMNS:
        if name in columns:
            return name
    if len(columns) == 1:
        return columns[0]
    raise DataError(
        f"manifest {manifest}: no column named {', '.join(MANIFEST_COLUMNS)} among its columns "
        f"({', '.join(columns) or 'none'}); name the column of image paths or URLs 'path' or 'url'"
    )


def _open_text(manifest: str) -> Any:
    try:
        fd, _ = open_regular(manifest, DataError, "manifest")
    except FileNotFoundError:
        raise DataError(f"manifest not found: {manifest}") from None
    return open(fd, encoding="utf-8-sig", newline="")


def _csv_entries(manifest: str) -> tuple[str, list[Any]]:
    with _open_text(manifest) as f:
        reader = csv.DictReader(f)
        column = _choose_column([c.strip() for c in reader.fieldnames or []], manifest)
        key = next(c for c in reader.fieldnames or [] if c.strip() == column)
        return column, [row.get(key) for row in reader]


def _jsonl_entries(manifest: str) -> tuple[str, list[Any]]:
    values: list[Any] = []
    column: str | None = None
    with _open_text(manifest) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"manifest {manifest}, line {number}: not JSON ({e.msg})") from None
            if isinstance(item, str):
                values.append(item)
                continue
            if not isinstance(item, dict):
                raise DataError(
                    f'manifest {manifest}, line {number}: expected an object such as {{"path": "a.jpg"}} '
                    f"or a string, got {type(item).__name__}"
                )
            if column is None:
                column = _choose_column(list(item), manifest)
            values.append(item.get(column))
    return column or "path", values


def _parquet_entries(manifest: str) -> tuple[str, list[Any]]:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise DataError(
            f'reading the Parquet manifest {manifest} needs pyarrow: pip install "zeromamba[ray]"'
        ) from None
    fd, _ = open_regular(manifest, DataError, "manifest")
    with open(fd, "rb") as f:
        try:
            parquet = pq.ParquetFile(f)
            column = _choose_column(parquet.schema_arrow.names, manifest)
            table = parquet.read(columns=[column])
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"cannot read the Parquet manifest {manifest}: {e}") from None
    return column, table.column(0).to_pylist()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_manifest(manifest: str | os.PathLike) -> list[str]:
    """The image paths and URLs a manifest lists, in its order; relative paths joined to its folder.

    Raises:
        DataError: a missing or unreadable file, no column of paths, or an empty or non-text entry
            (its row named).
    """
    name = os.fspath(manifest)
    kind = os.path.splitext(name)[1].lower()
    reader = {".parquet": _parquet_entries, ".csv": _csv_entries, ".jsonl": _jsonl_entries}.get(kind)
    if reader is None:
        raise DataError(f"{name} is not a manifest: expected one of {', '.join(MANIFEST_SUFFIXES)}")
    column, values = reader(name)
    folder = os.path.dirname(name)
    entries = []
    for row, value in enumerate(values, 1):
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"manifest {name}, row {row}: {column!r} is {'empty' if _blank(value) else repr(value)}; "
                "every row needs an image path or URL"
            )
        value = value.strip()
        entries.append(value if is_url(value) or os.path.isabs(value) else os.path.join(folder, value))
    return entries


def expand_manifests(sources: Iterable[str]) -> list[str]:
    """``sources`` with each manifest (:func:`is_manifest`) replaced by the images it lists."""
    out: list[str] = []
    for source in sources:
        out += read_manifest(source) if is_manifest(source) else [source]
    return out
