"""Reading a ``.npy`` array without trusting its header.

A ``.npy`` header declares a shape and a dtype, and ``numpy.load`` allocates that much before it
reads the data: 128 bytes declaring ``(10**6, 10**6)`` float64 ask for 8 TB. :func:`load_npy` reads
the header alone first and requires the file to hold exactly the bytes it declares (and a numeric
dtype, never Python objects) before numpy allocates anything. A leaf module: numpy only.
"""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["load_npy"]

#: dtype kinds of a numeric array: bool, signed / unsigned integer, float, complex
_NUMERIC_KINDS = "biufc"


def load_npy(data: bytes, source: str, error: type[Exception]) -> np.ndarray:
    """The array in ``data`` (a ``.npy`` file's bytes), loaded without pickle.

    Raises:
        error: not a ``.npy`` file, a header numpy cannot read, a dtype that is not numeric, or a
            header that declares more or fewer bytes than follow it (the message gives both).
    """
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} (only 1.0 and 2.0 are read)")
    except (ValueError, OSError, SyntaxError, TypeError) as e:
        raise error(f"cannot read {source} as a .npy array: {e}") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject:
        raise error(f"{source} holds a {dtype} array, not numbers: only numeric .npy arrays are read")
    declared = math.prod(shape) * dtype.itemsize
    held = len(data) - f.tell()
    if declared != held:
        raise error(
            f"{source}: its header declares a {'x'.join(map(str, shape)) or 'scalar'} {dtype} array "
            f"({declared:,} bytes) but {held:,} bytes follow it: the file is truncated or its header is wrong"
        )
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise error(f"cannot read {source} as a numeric .npy array: {e}") from None
