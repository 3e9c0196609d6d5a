"""Reading a class-attribute table: a CSV (or TSV) file, the class name then one value per attribute.

The format is RFC 4180, as Python's :mod:`csv` writer and every spreadsheet write it: fields
separated by commas, a field holding a comma, a quote or a line break is quoted, and a quote inside
it is doubled (the field ``"a ""b"" c"``). A semicolon or a tab separates the fields instead only where
the file clearly uses it: no consistent table of numbers comes out with commas, and exactly one of
the two gives one, over the first :data:`DIALECT_SAMPLE_ROWS` rows (not from the header line alone).
Blank lines and lines starting with ``#`` between rows are skipped; spaces around a cell are dropped.

Unquoted files are parsed by numpy (linear time: 100,000 classes in about two seconds); files with
quotes by :mod:`csv` in strict mode, so a malformed quote is an error rather than a changed name.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AttributeMatrixError
from .fileio import MAX_TEXT_FILE_BYTES, read_regular_bytes

__all__ = ["DELIMITERS", "DIALECT_SAMPLE_ROWS", "AttributeTable", "is_number", "read_attribute_table", "read_text_file"]

#: the field separators recognised; the first one is the standard's and the default
DELIMITERS = (",", ";", "\t")
#: rows (the header included) read to tell which separator a file uses
DIALECT_SAMPLE_ROWS = 64

# "0,5": a decimal comma, which float() does not read
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


def read_text_file(path: Path, what: str, expected: str | None = None) -> str:
    """A regular file's UTF-8 text (a byte-order mark dropped); a FIFO, a device, a file over
    :data:`~zeromamba.fileio.MAX_TEXT_FILE_BYTES` or a missing file is an :class:`AttributeMatrixError` at once."""
    try:
        data = read_regular_bytes(path, MAX_TEXT_FILE_BYTES, AttributeMatrixError, f"the {what} file")
    except FileNotFoundError:
        raise AttributeMatrixError(f"{what} file not found: {path}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        must = f"; the {what} must be {expected}" if expected else "; it must be UTF-8 text"
        raise AttributeMatrixError(f"{path} is not text{must}") from None


def is_number(s: str) -> bool:
    """Whether ``float()`` reads ``s``."""
    try:
        float(s)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AttributeTable:
    """A class-attribute table as read from a file.

    Attributes:
        class_names: the first column, one name per row.
        attribute_names: the header's attribute columns, or ``None`` for a file without a header.
        values: ``(C, A)`` float64 values.
        path: the file it came from.
        name_column: the header's first cell (the class-name column's title), ``None`` without a header.
        delimiter: the field separator the file uses.
    """

    class_names: list[str]
    attribute_names: list[str] | None
    values: np.ndarray
    path: str
    name_column: str | None = None
    delimiter: str = ","


def read_attribute_table(path: str | Path, *, require_header: bool = False) -> AttributeTable:
    """Read a class-attribute CSV: ``class,<attribute 1>,...`` then one row per class (see the
    module docs for the format). A first row whose value cells are not all numbers is the header
    (its first cell, e.g. ``class``, titles the name column).

    Raises:
        AttributeMatrixError: missing or unreadable file, no rows, a header required but absent,
            a malformed quoted field, rows of unequal width, values that are not finite numbers, or
            duplicate class names.
    """
    path = Path(path)
    text = read_text_file(path, "class-attribute")
    records: list
    quoted = '"' in text
    comments: list[str] = []
    if quoted:  # quoted fields: the csv module splits them
        delimiter = _choose_delimiter(lambda d: _first_records(text, d, path))
        records = [[c.strip() for c in r] for r in _records(text, delimiter, path, comments)]
        first_row = records[0] if records else []
        one_column = all(len(r) == 1 for r in records)
    else:
        all_lines = text.splitlines()
        records = [ln for ln in all_lines if ln.strip() and not ln.lstrip().startswith("#")]
        if "#" in text:
            comments = [ln for ln in all_lines if ln.lstrip().startswith("#")]
        delimiter = _choose_delimiter(lambda d: [ln.split(d) for ln in records[:DIALECT_SAMPLE_ROWS]])
        first_row = [c.strip() for c in records[0].split(delimiter)] if records else []
        one_column = not any(delimiter in ln for ln in records)
    if not records:
        raise AttributeMatrixError(f"class-attribute file {path} has no rows; it needs one row per class")
    if len(first_row) == 1 and one_column:
        raise AttributeMatrixError(
            f"{path} has one column: it looks like a list of names, not a class-attribute table. Expected a header "
            "'class,<attribute 1>,<attribute 2>,...' then one row per class: its name and one number per attribute "
            "(class names alone go in class_names / --class-names)"
        )
    header = name_column = None
    if len(first_row) > 1 and not all(is_number(c) for c in first_row[1:]):
        name_column, header, records = first_row[0], first_row[1:], records[1:]
    if header is not None and records:
        cells = len(records[0]) if quoted else records[0].count(delimiter) + 1
        if cells == len(first_row) + 1:
            raise AttributeMatrixError(
                f"{path}: the header has no class-name column: its {len(first_row)} cells all title attribute "
                f"columns ({first_row[0]!r} first), but each row has {cells} cells, the class name first. Put a "
                f"title for the name column at the start of the header: class,{first_row[0]},..."
            )
    if require_header and header is None:
        raise AttributeMatrixError(f"{path}: needs a header row 'class,<attribute>,...' naming the attributes")
    if not records:
        raise AttributeMatrixError(f"class-attribute file {path} has a header but no class rows")
    width = len(header) if header is not None else len(first_row) - 1
    if width < 1:
        raise AttributeMatrixError(f"{path}: each row needs a class name and at least one attribute value")
    first = 2 if header is not None else 1
    _warn_about_rows_in_comments(comments, delimiter, width, path)
    if quoted:
        names, matrix = _parse_rows(records, width, path, first)
    else:  # the common case, parsed in C: numpy reads the values, a split at the first delimiter the names
        names, matrix = _parse_plain(records, delimiter, width, path, first)
    if not np.all(np.isfinite(matrix)):
        r, c = map(int, np.argwhere(~np.isfinite(matrix))[0])
        raise AttributeMatrixError(f"{path}, row {r + first}: attribute values contain NaN or inf (column {c + 2})")
    counts = Counter(names)  # a dict count: linear in the rows (list.count made 100k classes take minutes)
    dup = sorted(n for n, k in counts.items() if k > 1)
    if dup:
        raise AttributeMatrixError(f"{path}: duplicate class rows: {', '.join(dup[:5])}")
    return AttributeTable(names, header, matrix, str(path), name_column, delimiter)


# --- the dialect -----------------------------------------------------------------------------------


def _fits(rows: list[list[str]]) -> bool:
    """Whether split rows form a table: one width of at least two, numbers after the first cell
    (the first row may be a header)."""
    if not rows or len(rows[0]) < 2 or any(len(r) != len(rows[0]) for r in rows):
        return False
    data = rows[1:] if len(rows) > 1 else rows
    return all(is_number(c.strip()) for r in data for c in r[1:])


def _choose_delimiter(sample: Callable[[str], list[list[str]]]) -> str:
    """The standard comma, unless it gives no table and exactly one other separator does. With no
    fit at all, the separator that splits the first row widest, so that the error names the bad row."""
    split = {d: sample(d) for d in DELIMITERS}
    if _fits(split[","]):
        return ","
    fitting = [d for d in DELIMITERS[1:] if _fits(split[d])]
    if len(fitting) == 1:
        return fitting[0]
    widths = {d: len(split[d][0]) if split[d] else 0 for d in DELIMITERS}
    return max(DELIMITERS, key=lambda d: (widths[d], d == ","))


# --- RFC 4180 records ------------------------------------------------------------------------------


def _records(text: str, delimiter: str, path: Path, comments: list[str] | None = None) -> Iterator[list[str]]:
    """The rows of ``text`` (quoted fields may hold separators, doubled quotes and line breaks);
    blank lines and ``#`` lines between rows are skipped (the latter kept in ``comments``), never
    inside a quoted field."""
    at_row_start = [True]

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            if at_row_start[0] and (not line.strip() or line.lstrip().startswith("#")):
                if comments is not None and line.strip():
                    comments.append(line.rstrip("\r\n"))
                continue
            at_row_start[0] = False
            yield line

    reader = csv.reader(lines(), csv.excel, delimiter=delimiter, strict=True)
    try:
        for row in reader:
            yield row
            at_row_start[0] = True
    except csv.Error as e:
        raise AttributeMatrixError(
            f"{path}, line {reader.line_num}: cannot read the row ({e}); a field holding a separator, a quote or a "
            'line break must be quoted, with quotes inside doubled ("He said ""hi""")'
        ) from None


def _warn_about_rows_in_comments(comments: list[str], delimiter: str, width: int, path: Path) -> None:
    """A ``#`` line shaped like a row (a name, then ``width`` numbers) may be a class whose name
    starts with ``#`` that a CSV writer left unquoted: it is skipped as a comment, and said so."""
    rows = [ln for ln in comments if _fits([[c.strip() for c in ln.split(delimiter)]]) and ln.count(delimiter) == width]
    if rows:
        warnings.warn(
            f"{path}: skipped {len(rows)} line(s) starting with '#' as comments, though shaped like class rows "
            f"(first: {rows[0][:60]!r}); a class whose name starts with '#' must be quoted (\"#1 pick\",...)",
            stacklevel=3,
        )


def _first_records(text: str, delimiter: str, path: Path) -> list[list[str]]:
    out: list[list[str]] = []
    try:
        for row in _records(text, delimiter, path):
            out.append(row)
            if len(out) == DIALECT_SAMPLE_ROWS:
                break
    except AttributeMatrixError:
        pass  # reported when the file is read with the separator chosen
    return out


# --- values ----------------------------------------------------------------------------------------


def _wrong_width(path: Path, n: int, got: int, width: int) -> AttributeMatrixError:
    return AttributeMatrixError(
        f"{path}, row {n}: {got} values, expected {width} (one column per attribute after the class name)"
    )


def _parse_plain(lines: list[str], delimiter: str, width: int, path: Path, first: int) -> tuple[list[str], np.ndarray]:
    """Names and ``(C, width)`` values of unquoted rows; a bad row is looked for row by row, to name it."""
    if any(line.count(delimiter) != width for line in lines):
        return _parse_rows([[c.strip() for c in ln.split(delimiter)] for ln in lines], width, path, first)
    names = [line.partition(delimiter)[0].strip() for line in lines]
    try:
        values = np.loadtxt(
            lines, delimiter=delimiter, usecols=range(1, width + 1), dtype=np.float64, ndmin=2, comments=None
        )
    except ValueError:
        return _parse_rows([[c.strip() for c in ln.split(delimiter)] for ln in lines], width, path, first)
    return names, values


def _parse_rows(rows: list[list[str]], width: int, path: Path, first: int) -> tuple[list[str], np.ndarray]:
    """Names and ``(C, width)`` float64 values of split rows, each checked (``first``: the file row of ``rows[0]``)."""
    values = np.empty((len(rows), width), dtype=np.float64)
    for n, row in enumerate(rows):
        if len(row) - 1 != width:
            raise _wrong_width(path, n + first, len(row) - 1, width)
        try:
            values[n] = [float(c) for c in row[1:]]
        except ValueError:
            bad = next(c for c in row[1:] if not is_number(c))
            hint = "; write decimals with a point (0.5), not a comma" if _DECIMAL_COMMA.match(bad) else ""
            raise AttributeMatrixError(
                f"{path}, row {n + first}: a value that is not a number: {bad!r} (in {row[1:][:8]}){hint}"
            ) from None
    return [row[0] for row in rows], values
