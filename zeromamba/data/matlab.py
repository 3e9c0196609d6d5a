"""Reading MATLAB ``.mat`` files (v5/v7, as the xlsa17 splits and the authors' files are stored).

One loader and one reader of cell arrays of strings, for the xlsa17 dataset loader and for the
conversion of the authors' checkpoints alike. Every failure is a :class:`~zeromamba.errors.DataError`
that names the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["cell_strings", "load_mat"]


def load_mat(
    path: str | os.PathLike,
    required: Sequence[str] = (),
    optional: Sequence[str] = (),
    *,
    what: str = "MATLAB file",
) -> dict[str, Any]:
    """The variables of a ``.mat`` file, as ``scipy.io.loadmat`` returns them.

    Args:
        path: the file.
        required: variables that must be present (a missing one raises).
        optional: variables read when present. With neither list, every variable is read;
            otherwise only the named ones (large unrelated arrays stay on disk).
        what: how messages name the file (``"att_splits.mat"``, ``"xlsa17 file"`` ...).

    Raises:
        DataError: scipy is not installed, the file is missing or not a readable ``.mat`` file
            (corrupt, HDF5-based v7.3, another format), or a required variable is absent.
    """
    try:
        import scipy.io
    except ModuleNotFoundError:
        raise DataError("reading .mat files needs scipy: pip install 'zeromamba[train]'") from None
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{what} not found: {path!r}")
    if not os.path.isfile(path):  # a folder, FIFO or device (also behind a link): never opened
        raise DataError(f"{what} {path!r} is not a regular file: refused unread")
    names = [*required, *optional]
    try:
        mat = scipy.io.loadmat(path, variable_names=names or None)
    except Exception as e:  # scipy raises ValueError / TypeError / MatReadError on bad files
        raise DataError(f"cannot read {what} {path!r} as a MATLAB file: {e}") from None
    missing = [n for n in required if n not in mat]
    if missing:
        raise DataError(f"{what} {path!r} lacks the variable(s) {', '.join(missing)}")
    return mat


def cell_strings(value: Any, path: str | os.PathLike, name: str) -> list[str]:
    """A MATLAB cell array of strings (``N x 1`` or ``1 x N``, as ``loadmat`` returns it), or a
    char matrix (one space-padded row per string), as a list of ``str``.

    ``path`` and ``name`` (the variable) go into the error message.

    Raises:
        DataError: an element that is not a string.
    """
    arr = np.asarray(value)
    if arr.dtype.kind in "US":  # a char matrix: MATLAB pads its rows to one length
        return [_text(s).rstrip() for s in arr.reshape(-1)]
    out = []
    for item in arr.reshape(-1):
        while isinstance(item, np.ndarray) and item.dtype == object and item.size == 1:
            item = item.reshape(-1)[0]
        if isinstance(item, np.ndarray) and item.dtype.kind in "US":
            item = "".join(_text(c) for c in item.reshape(-1))  # '' for an empty cell
        elif isinstance(item, bytes):
            item = _text(item)
        if not isinstance(item, str):
            raise DataError(f"{os.fspath(path)!r}: '{name}' is not a cell array of strings")
        out.append(str(item))
    return out


def _text(s: Any) -> str:
    return s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s)
