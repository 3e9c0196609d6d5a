"""Class descriptions: class-attribute matrices, name lists and seen-class sets.

One reader per file kind, used by the predictor, the saved format, checkpoint conversion and the
data layer alike:

* a names list (``.txt``, one name per line): :func:`read_names`;
* a class-attribute table (CSV / TSV, the class name then one column per attribute, an optional
  header row of attribute names): :func:`read_attribute_table` (:mod:`zeromamba.class_table`);
* classes defined by attribute name, ``{class name: {attribute name: value}}``, as a dict or a JSON
  file (:mod:`zeromamba.class_definitions`);
* a ``.npy`` matrix, an array, a tensor or a ``{class name: vector}`` dict: :func:`load_class_attributes`,
  which also validates and L2-normalises any of the above, and refuses a class name given twice;
* a seen-class set (a boolean mask, class indices or class names): :func:`seen_mask` /
  :func:`seen_indices`.

Every failure is an :class:`~zeromamba.errors.AttributeMatrixError` naming the file or the value.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .class_definitions import match_columns, name_key, read_class_json, require_unique_names, vector_from_names
from .class_table import AttributeTable, is_number, read_attribute_table, read_text_file
from .errors import AttributeMatrixError
from .fileio import MAX_TEXT_FILE_BYTES, read_regular_bytes
from .npy import load_npy
from .terminal import terminal_safe

__all__ = [
    "MAX_ATTRIBUTE_MAGNITUDE",
    "AttributeTable",
    "ClassAttributes",
    "as_class_matrix",
    "load_class_attributes",
    "load_class_names",
    "match_columns",
    "read_attribute_table",
    "read_class_attribute_file",
    "read_names",
    "require_unique_names",
    "seen_indices",
    "seen_mask",
]

# array-like (C x A), Mapping[str, vector or {attribute name: value}], or a path to a .csv / .json / .npy file
ClassAttributes = Any

# binary formats that are sometimes mistaken for a class-attribute matrix
_NOT_A_TABLE = (".pt", ".pth", ".pkl", ".pickle", ".safetensors", ".mat", ".npz", ".png", ".jpg", ".jpeg")

# "12 has_bill_shape::curved" (CUB attributes.txt) or "3. stripes": a numbered line
_NUMBERED = re.compile(r"^\s*\d+(?:\s+|[.:]\s*)(?=\S)")

#: the largest magnitude a class-attribute value may have: scores are computed in float32
MAX_ATTRIBUTE_MAGNITUDE = float(np.finfo(np.float32).max)


# --- names ---------------------------------------------------------------------------------------


def read_names(source: str | os.PathLike | Iterable[str], what: str = "names") -> list[str]:
    """Names from an iterable, or from a text file with one name per line.

    In a file, blank lines and lines starting with ``#`` are skipped, and when *every* name line
    starts with a number (``1 has_bill_shape::curved`` in CUB's ``attributes.txt``, AwA2's
    ``predicates.txt``) that number is dropped.

    Raises:
        AttributeMatrixError: the file is missing or unreadable, not a regular file (a FIFO, a device)
            or larger than :data:`~zeromamba.fileio.MAX_TEXT_FILE_BYTES` (``what`` names it in the message).
    """
    if not isinstance(source, (str, os.PathLike)):
        return [str(s) for s in source]
    path = Path(source)
    expected = f"a text file with one {what[:-1] if what.endswith('s') else what} per line"
    text = read_text_file(path, what, expected)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and all(_NUMBERED.match(ln) for ln in lines):
        lines = [_NUMBERED.sub("", ln, count=1).strip() for ln in lines]
    if lines and all(_looks_like_table_row(ln) for ln in lines):
        raise AttributeMatrixError(
            f"{path} looks like a class-attribute table (a name then numbers on every line), but the {what} must be "
            f"{expected}; pass the table as attributes (--attributes)"
        )
    return lines


def _looks_like_table_row(line: str) -> bool:
    cells = [c.strip() for c in re.split(r"[,;\t]", line)]
    return len(cells) > 2 and all(is_number(c) for c in cells[1:])


def load_class_names(source: str | os.PathLike | Iterable[str]) -> list[str]:
    """Class names from a text file (see :func:`read_names`) or an iterable.

    Raises:
        AttributeMatrixError: an unreadable file, or a name given twice.
    """
    names = read_names(source, "class names")
    where = f"the class names of {os.fspath(source)}" if isinstance(source, (str, os.PathLike)) else "class_names"
    require_unique_names(names, where)
    return names


# --- matrices ------------------------------------------------------------------------------------


def as_class_matrix(matrix: Any, what: str = "class_attributes") -> torch.Tensor:
    """A non-empty, finite ``(C, A)`` float32 CPU tensor from a real array-like (not normalised).

    Raises:
        AttributeMatrixError: not 2-D or empty, complex or non-numeric values, NaN or inf, or a value
            beyond float32's range (:data:`MAX_ATTRIBUTE_MAGNITUDE`).
    """
    if isinstance(matrix, torch.Tensor):
        if matrix.is_complex():
            raise AttributeMatrixError(_complex_message(what, str(matrix.dtype)))
        array = matrix.detach().cpu().double().numpy()
    else:
        array = np.asarray(matrix)
        if np.iscomplexobj(array):
            raise AttributeMatrixError(_complex_message(what, str(array.dtype)))
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise AttributeMatrixError(f"{what} must be numeric, got dtype {array.dtype}") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise AttributeMatrixError(
            f"{what} must be a non-empty 2-D (classes x attributes) matrix (got shape {tuple(array.shape)})"
        )
    if not np.isfinite(array).all():
        raise AttributeMatrixError(f"{what} holds NaN or inf values")
    _check_scale(array, what)
    return torch.from_numpy(array.astype(np.float32)).contiguous()


def _complex_message(what: str, dtype: str) -> str:
    return (
        f"{what} holds complex numbers (dtype {dtype}); attribute values must be real: give the real values "
        "themselves (zeromamba never drops an imaginary part for you)"
    )


def _check_scale(matrix: np.ndarray, what: str) -> None:
    """A finite float64 matrix whose values all fit float32, the precision scores are computed in."""
    big = np.abs(matrix) > MAX_ATTRIBUTE_MAGNITUDE
    if big.any():
        r, c = map(int, np.argwhere(big)[0])
        raise AttributeMatrixError(
            f"{what} holds {int(big.sum())} value(s) beyond float32's range of +-{MAX_ATTRIBUTE_MAGNITUDE:.3g} "
            f"(first at row {r}, column {c}: {matrix[r, c]:.3g}); scores are computed in float32, so rescale the "
            "attributes (only a row's direction matters, e.g. divide by the largest value)"
        )


def _matrix_from_mapping(
    source: Mapping[Any, Any], attribute_names: Sequence[str] | None, where: str = "the attribute dict"
) -> tuple[np.ndarray, list[str]]:
    """``{class name: vector}`` or ``{class name: {attribute name: value}}`` (mixed too) as rows."""
    if not source:
        raise AttributeMatrixError(f"{where} is empty; it needs one entry per class")
    names = [str(k) for k in source]
    require_unique_names(names, f"{where} (its keys as text)")
    rows = []
    for name, v in zip(names, source.values()):
        if isinstance(v, Mapping):
            rows.append(vector_from_names(v, attribute_names, name))
            continue
        row = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        if row.ndim != 1:
            raise AttributeMatrixError(
                f"class {name!r}: expected a vector of attribute values or a dict of attribute names to values "
                f"({{'red': 1, 'circle': 1}}), got shape {row.shape}"
            )
        rows.append(row)
    if len({r.shape for r in rows}) > 1:
        lengths = sorted({len(r) for r in rows})
        raise AttributeMatrixError(
            f"the attribute vectors have different lengths {lengths}; give each class all of them"
        )
    try:
        return np.stack(rows), names
    except (TypeError, ValueError) as e:  # values of no common numeric type
        raise AttributeMatrixError(f"{where}: the attribute values must be numbers ({e})") from None


def read_class_attribute_file(path: str | os.PathLike) -> AttributeTable | np.ndarray | dict[str, Any]:
    """A class-attribute file as read, before it is matched to a model: a ``.npy`` file as its array, a
    ``.json`` file as its dict of classes, a CSV table as an :class:`AttributeTable`. Each can be pickled and given to
    :func:`load_class_attributes` later, where the file is not reachable (another process or machine).

    Raises:
        AttributeMatrixError: a missing file, a folder, a file of another kind, or an unreadable table.
    """
    path = Path(path)
    if path.is_dir() or not os.path.lexists(path):
        what = "a folder" if path.is_dir() else "not found"
        raise AttributeMatrixError(
            f"class-attribute file {path}: {what}; pass a .csv (or .tsv, .txt) table, a .json file of classes by "
            "attribute name or a .npy matrix"
        )
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_class_json(path)
    if suffix == ".npy":
        try:  # read as a regular file of bounded size first: np.load would block on a FIFO
            data = read_regular_bytes(path, MAX_TEXT_FILE_BYTES, AttributeMatrixError, "the class-attribute file")
        except FileNotFoundError:
            raise AttributeMatrixError(f"class-attribute file not found: {path}") from None
        return load_npy(data, str(path), AttributeMatrixError)  # header checked before numpy allocates
    if suffix in _NOT_A_TABLE:
        raise AttributeMatrixError(
            f"{path}: a {suffix} file is not a class-attribute matrix; pass a .csv table "
            "(class,<attribute>,... then one row per class), a .json file or a .npy C x A array"
        )
    return read_attribute_table(path)


def _matrix_from_table(
    table: AttributeTable, num_attributes: int | None, attribute_names: Sequence[str] | None
) -> tuple[np.ndarray, list[str] | None]:
    path = table.path
    matrix, header = table.values, table.attribute_names
    _require_name_column(table, num_attributes, attribute_names)
    if header is not None and attribute_names is not None:
        matrix = matrix[:, match_columns(header, list(attribute_names), str(path))]
    elif num_attributes is not None and matrix.shape[1] != num_attributes:
        names = (
            f" ({terminal_safe(', '.join(list(attribute_names)[:12]))}{', ...' if len(attribute_names) > 12 else ''})"
            if attribute_names
            else ""
        )
        raise AttributeMatrixError(
            f"{path}: {matrix.shape[1]} attribute column(s) after the class name, but the model predicts "
            f"{num_attributes} attributes{names}; give one column per attribute, best under a header row naming them"
        )
    elif header is not None:
        warnings.warn(
            f"{path}: the model has no attribute names, so the header cannot be checked; its columns are read in "
            "file order",
            stacklevel=3,
        )
    return matrix, list(table.class_names)


def _require_name_column(
    table: AttributeTable, num_attributes: int | None, attribute_names: Sequence[str] | None
) -> None:
    """Refuse a table whose first column is not class names: a header that starts with an attribute,
    or rows that start with a number where one value is missing."""
    path = table.path
    if table.name_column is not None and attribute_names and table.attribute_names is not None:
        keys = {name_key(a) for a in table.attribute_names}
        first = name_key(table.name_column)
        if any(name_key(a) == first for a in attribute_names) and first not in keys:
            raise AttributeMatrixError(
                f"{path}: the header has no class-name column: its first column, {table.name_column!r}, is an "
                f"attribute, but the first column holds each row's class name. Put a name column first "
                f"(class,{table.name_column},...) and each class's name at the start of its row"
            )
    width = table.values.shape[1]
    if num_attributes is not None and width == num_attributes - 1 and all(map(is_number, table.class_names)):
        raise AttributeMatrixError(
            f"{path}: no class-name column: every row starts with a number ({table.class_names[0]!r}) and has "
            f"{width} values after it, one short of the model's {num_attributes} attributes. Put each class's name "
            "first, then its values (a header row 'class,<attribute>,...' names the columns)"
        )


def load_class_attributes(
    source: ClassAttributes,
    num_attributes: int | None = None,
    *,
    class_names: Sequence[str] | str | os.PathLike | None = None,
    attribute_names: Sequence[str] | None = None,
    normalize: bool = True,
) -> tuple[torch.Tensor, list[str] | None]:
    """Read and validate a class-attribute matrix; returns ``(C x A float32 tensor, names or None)``.

    ``source`` may be:

    * a ``C x A`` numpy array, torch tensor or nested list (row ``i`` describes class ``i``);
    * a dict ``{class name: vector of A values}``, or of the attributes each class has by name,
      ``{"red disc": {"red": 1, "circle": 1, "solid": 1}}`` (attributes not named are 0; names
      matched as in a CSV header; an unknown name is an error suggesting the close ones);
    * a ``.json`` file holding such a dict;
    * a ``.npy`` file (a ``C x A`` array, loaded without pickle);
    * a CSV file (see :func:`read_attribute_table`), or the :class:`AttributeTable` read from one. A
      header row is matched to the model's
      ``attribute_names`` by name (:func:`match_columns`: any order; exact, else ignoring case and
      separators), and any column that names no attribute, or an attribute without a column, is an
      error. A file without a header is read by position, and only when each row is the class name
      then exactly ``num_attributes`` values. Example::

          class,has_stripes,has_hooves,is_black
          zebra,1,1,0.5
          horse,0,1,0.2

    ``class_names`` (a list or a text file, one name per line), when given, replace the names the
    matrix came with. Rows are L2-normalised unless ``normalize=False``, as in the xlsa17 ``att``
    matrices the published models were trained with: only a row's direction matters.

    Raises:
        AttributeMatrixError: unreadable file or a file of another kind (a names list, a checkpoint),
            a header that does not name the model's attributes, not two-dimensional, no rows, a
            column count other than ``num_attributes``, complex values (never cast), NaN or inf values,
            values beyond float32's range (:data:`MAX_ATTRIBUTE_MAGNITUDE`), an all-zero row, names
            whose count does not match the rows, or a class name given twice (also ``{1: v, "1": w}``).
            File errors name the file; a FIFO, a device or a file over
            :data:`~zeromamba.fileio.MAX_TEXT_FILE_BYTES` is refused before anything is read.
    """
    names: list[str] | None = None
    what = "the class-attribute matrix"
    file_name = None
    if isinstance(source, (str, os.PathLike)):
        file_name = os.fspath(source)
        what = f"the class-attribute matrix of {file_name}"
        source = read_class_attribute_file(source)
    if isinstance(source, AttributeTable):
        what = f"the class-attribute matrix of {source.path}"
        matrix, names = _matrix_from_table(source, num_attributes, attribute_names)
    elif isinstance(source, Mapping) and file_name is not None:  # a .json file: its errors name it
        try:
            matrix, names = _matrix_from_mapping(source, attribute_names, file_name)
        except AttributeMatrixError as e:
            if file_name in str(e):
                raise
            raise AttributeMatrixError(f"{file_name}: {e}") from None
    elif isinstance(source, Mapping):
        matrix, names = _matrix_from_mapping(source, attribute_names)
    elif isinstance(source, torch.Tensor):
        if source.is_complex():  # .float() would drop the imaginary part with only a warning
            raise AttributeMatrixError(_complex_message(what, str(source.dtype)))
        matrix = source.detach().cpu().double().numpy()
    else:
        try:
            matrix = np.asarray(source)
        except (TypeError, ValueError) as e:
            raise AttributeMatrixError(f"cannot read the class-attribute matrix: {e}") from e
    if np.iscomplexobj(matrix):
        raise AttributeMatrixError(_complex_message(what, str(matrix.dtype)))
    if not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == np.bool_):
        raise AttributeMatrixError(f"{what} must be numeric, got dtype {matrix.dtype}")
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise AttributeMatrixError(
            f"{what} must be 2-D (classes x attributes), got shape {matrix.shape}"
            + ("; for one class use a 1 x A matrix" if matrix.ndim == 1 else "")
        )
    if matrix.shape[0] == 0:
        raise AttributeMatrixError(f"{what} has no rows; it needs one row per class")
    if num_attributes is not None and matrix.shape[1] != num_attributes:
        hint = " (it looks transposed: rows must be classes)" if matrix.shape[0] == num_attributes else ""
        raise AttributeMatrixError(
            f"{what} has {matrix.shape[1]} columns but the model predicts {num_attributes} "
            f"attributes{hint}; give one row per class with the model's {num_attributes} attributes in its order"
        )
    bad = ~np.isfinite(matrix)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise AttributeMatrixError(
            f"{what} has {int(bad.sum())} NaN or inf values (first at row {r}, column {c}); fill in every value"
        )
    _check_scale(matrix, what)
    norms = np.linalg.norm(matrix, axis=1)  # float64: no overflow for values within float32's range
    if (norms == 0).any():
        r = int(np.argmax(norms == 0))
        who = f" ({names[r]!r})" if names else ""
        raise AttributeMatrixError(f"row {r}{who} of {what} is all zeros; a class needs attributes")
    if class_names is not None:
        names = load_class_names(class_names)
    if names is not None and len(names) != matrix.shape[0]:
        raise AttributeMatrixError(
            f"{len(names)} class names for {matrix.shape[0]} rows of the class-attribute matrix; give one name per row"
        )
    if normalize:
        matrix = matrix / norms[:, None]
    single = matrix.astype(np.float32)
    vanished = ~single.any(axis=1)
    if vanished.any():  # only without normalising: values so small that float32 holds them as 0
        r = int(np.argmax(vanished))
        raise AttributeMatrixError(
            f"row {r} of {what} is all zeros in float32 (its values, as small as {np.abs(matrix[r]).max():.3g}, are "
            "below float32's precision); rescale the attributes"
        )
    return torch.from_numpy(single), names


# --- seen classes --------------------------------------------------------------------------------


def seen_mask(seen: Any, num_classes: int, class_names: Sequence[str] | None = None) -> torch.Tensor | None:
    """A boolean mask over ``num_classes`` classes from a mask, class indices or class names.

    Raises:
        AttributeMatrixError: a mask of the wrong length, indices out of range, unknown names, or
            names given for classes that have none.
    """
    if seen is None:
        return None
    if isinstance(seen, torch.Tensor):
        seen = seen.detach().cpu().numpy()
    items = list(seen) if not isinstance(seen, np.ndarray) else None
    if items is not None and items and all(isinstance(s, str) for s in items):
        if class_names is None:
            raise AttributeMatrixError("seen classes given by name, but the classes have no names; pass indices")
        lookup = {n: i for i, n in enumerate(class_names)}
        missing = [s for s in items if s not in lookup]
        if missing:
            raise AttributeMatrixError(f"seen classes not among the class names: {missing[:5]}")
        seen = [lookup[s] for s in items]
    arr = np.asarray(seen)
    if arr.dtype == np.bool_:
        if arr.ndim != 1 or arr.shape[0] != num_classes:
            raise AttributeMatrixError(
                f"the seen mask has shape {arr.shape} but there are {num_classes} classes; give one boolean per class "
                "or a list of seen class indices"
            )
        return torch.from_numpy(arr.copy())
    if arr.size == 0:
        return torch.zeros(num_classes, dtype=torch.bool)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise AttributeMatrixError(
            "seen must be a boolean mask over the classes or a list of class indices, "
            f"got {arr.dtype} of shape {arr.shape}"
        )
    if arr.min() < 0 or arr.max() >= num_classes:
        raise AttributeMatrixError(f"seen class indices must be in 0..{num_classes - 1}, got {arr.min()}..{arr.max()}")
    mask = torch.zeros(num_classes, dtype=torch.bool)
    mask[torch.from_numpy(arr.astype(np.int64))] = True
    return mask


def seen_indices(seen: Any, num_classes: int, class_names: Sequence[str] | None = None) -> list[int] | None:
    """The sorted seen class indices (see :func:`seen_mask` for what ``seen`` may be)."""
    mask = seen_mask(seen, num_classes, class_names)
    return None if mask is None else torch.nonzero(mask).flatten().tolist()
