"""Attribute embeddings (``A x 300`` word2vec vectors) that initialise the SLP's semantic matrix.

The authors ship them as pickles (``{DATASET}_attribute.pkl``). Unpickling can run arbitrary code,
so a pickle is read only when the caller opts in (``allow_pickle=True``), with a warning; prefer
``.npy`` (read without pickle), ``.safetensors``, ``.pt`` (``weights_only``) or ``.csv``/``.txt``.
Convert a pickle you trust once with::

    python -c "import pickle, numpy; numpy.save('CUB_attribute.npy', pickle.load(open('CUB_attribute.pkl', 'rb')))"
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..fileio import MAX_TEXT_FILE_BYTES, read_regular_bytes
from ..npy import load_npy

__all__ = ["load_attribute_embeddings"]


def load_attribute_embeddings(
    path: str | os.PathLike, num_attributes: int | None = None, allow_pickle: bool = False
) -> torch.Tensor:
    """Read an ``(A, D)`` attribute-embedding matrix.

    Args:
        path: ``.npy``, ``.safetensors`` (a single tensor, or one named ``embeddings``), ``.pt``/``.pth``
            (a tensor, read with ``weights_only=True``), ``.csv``/``.txt`` (numbers), or ``.pkl``
            (only with ``allow_pickle``).
        num_attributes: when given, the number of rows required (``A`` of the class-attribute matrix).
        allow_pickle: opt in to unpickling a local file you trust (warns).

    Raises:
        DataError: missing file, a pickle without opt-in, wrong shape, NaN/inf.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"attribute-embedding file not found: {path!r}")
    ext = os.path.splitext(path)[1].lower()
    reader = _READERS.get(ext)
    if reader is None:
        raise DataError(f"{path!r}: unsupported embedding file type {ext!r} (use .npy, .safetensors, .pt, .csv)")
    if reader is _read_pickle:
        if not allow_pickle:
            raise DataError(
                f"{path!r} is a pickle, which can run code when loaded. If you trust this file, opt in "
                "(allow_pickle=True / --allow-pickle), or convert it to .npy once (see zeromamba.data.embeddings)."
            )
        warnings.warn(f"unpickling {path!r} (allow_pickle=True): only do this for files you trust", stacklevel=2)
    try:
        arr = reader(path)
    except Exception as e:  # whatever the format's library raises on a bad file
        raise DataError(f"cannot read attribute embeddings from {path!r}: {e}") from None
    if ext == ".safetensors":  # one tensor, or the one named 'embeddings'
        if "embeddings" in arr:
            arr = arr["embeddings"]
        elif len(arr) == 1:
            arr = next(iter(arr.values()))
        else:
            raise DataError(f"{path!r}: several tensors ({', '.join(sorted(arr))}); name one 'embeddings'")
    try:
        emb = torch.as_tensor(np.asarray(arr, dtype=np.float32) if not isinstance(arr, torch.Tensor) else arr)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path!r} does not hold a numeric matrix: {e}") from None
    emb = emb.float()
    if emb.dim() != 2:
        raise DataError(f"{path!r}: embeddings must be a 2-D (attributes x dim) matrix, got shape {tuple(emb.shape)}")
    if num_attributes is not None and emb.shape[0] != num_attributes:
        raise DataError(
            f"{path!r}: {emb.shape[0]} embedding rows but the class-attribute matrix has {num_attributes} attributes"
        )
    if not torch.isfinite(emb).all():
        raise DataError(f"{path!r}: embeddings contain NaN or inf")
    return emb


def _read_safetensors(path: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


def _read_npy(path: str) -> np.ndarray:
    data = read_regular_bytes(path, MAX_TEXT_FILE_BYTES, DataError, "the attribute-embedding file")
    return load_npy(data, repr(path), DataError)  # its header checked before numpy allocates


def _read_pickle(path: str) -> Any:
    import pickle

    with open(path, "rb") as f:
        return pickle.load(f)


_READERS: dict[str, Callable[[str], Any]] = {
    ".npy": _read_npy,
    ".safetensors": _read_safetensors,
    ".pt": lambda path: torch.load(path, map_location="cpu", weights_only=True),
    ".pth": lambda path: torch.load(path, map_location="cpu", weights_only=True),
    ".csv": lambda path: np.loadtxt(path, delimiter=",", ndmin=2),
    ".txt": lambda path: np.loadtxt(path, ndmin=2),
    ".pkl": _read_pickle,
    ".pickle": _read_pickle,
}
