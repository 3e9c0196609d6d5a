"""Reading a safetensors weights file that came from outside: header first, then the tensors.

Before a byte of tensor data is read (or a real model allocated), the file must be a regular file
and its header (a length and a JSON table) is parsed within bounds and compared with the tensors
the model expects: names, shapes and the kind of dtype (a float parameter must be stored as a
float; an int or bool tensor is refused, never cast). After loading, every float tensor must be
finite: NaN or inf anywhere is a :class:`CheckpointError` naming the tensors.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..fileio import open_regular
from ..models._helpers import REDOWNLOAD_HINT, check_finite
from ..terminal import terminal_safe

__all__ = ["MAX_HEADER_BYTES", "check_finite", "read_header", "read_weights"]

#: the largest safetensors header read (a table of a few thousand tensors is well under 1 MB)
MAX_HEADER_BYTES = 64 << 20
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
_DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.bool: "BOOL",
}


def read_header(path: Path, what: str) -> dict[str, dict[str, Any]]:
    """The tensor table of a safetensors file (``name -> {dtype, shape, data_offsets}``), checked for
    consistency with the file's size; nothing else is read.

    Raises:
        CheckpointError: missing, not a regular file, or not a valid safetensors file.
    """
    try:
        fd, st = open_regular(path, CheckpointError, f"{what}: weights file")
    except FileNotFoundError:
        raise CheckpointError(f"{what}: {str(path)!r} is missing") from None
    with os.fdopen(fd, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _invalid(path, what, "shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER_BYTES, st.st_size - 8):
            raise _invalid(path, what, f"its header claims {n:,} bytes of a {st.st_size:,}-byte file")
        raw = f.read(n)
    try:
        table = json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise _invalid(path, what, "its header is not JSON") from None
    if not isinstance(table, dict):
        raise _invalid(path, what, "its header is not a table of tensors")
    table.pop("__metadata__", None)
    data_size, end = st.st_size - 8 - n, 0
    for name, info in table.items():
        ok = (
            isinstance(info, dict)
            and isinstance(info.get("dtype"), str)
            and isinstance(info.get("shape"), list)
            and all(isinstance(d, int) and d >= 0 for d in info["shape"])
            and isinstance(info.get("data_offsets"), list)
            and len(info["data_offsets"]) == 2
            and all(isinstance(o, int) for o in info["data_offsets"])
            and 0 <= info["data_offsets"][0] <= info["data_offsets"][1] <= data_size
        )
        if not ok:
            raise _invalid(path, what, f"its entry for {name!r} is malformed or points past the end of the file")
        end = max(end, info["data_offsets"][1])
    if end != data_size:
        raise _invalid(path, what, f"its tensors cover {end:,} of its {data_size:,} data bytes (truncated or padded)")
    return table


def _invalid(path: Path, what: str, why: str) -> CheckpointError:
    return CheckpointError(
        f"{what}: {str(path)!r} is not a valid safetensors file (corrupt or truncated: {why}). {REDOWNLOAD_HINT}"
    )


def _check_against(table: Mapping[str, Mapping[str, Any]], expected: Mapping[str, torch.Tensor], what: str) -> None:
    missing = sorted(set(expected) - set(table))
    unexpected = [terminal_safe(k) for k in sorted(set(table) - set(expected))]  # names from the file
    problems = [f"missing ({len(missing)}): " + ", ".join(missing[:10])] if missing else []
    if unexpected:
        problems.append(f"unexpected ({len(unexpected)}): " + ", ".join(unexpected[:10]))
    shapes = [
        f"{k}: file {tuple(table[k]['shape'])} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in table and tuple(table[k]["shape"]) != tuple(v.shape)
    ]
    if shapes:
        problems.append(f"shape mismatch ({len(shapes)}): " + "; ".join(shapes[:10]))
    dtypes = [
        f"{k} is {table[k]['dtype']}, the model's is {_DTYPE_NAMES.get(v.dtype, str(v.dtype))}"
        for k, v in expected.items()
        if k in table and (table[k]["dtype"] in _FLOAT_DTYPES) != v.dtype.is_floating_point
    ]
    if dtypes:
        problems.append(
            f"wrong dtype ({len(dtypes)}; float parameters must be stored as F32/F16/BF16/F64, never cast "
            "from integers or booleans): " + "; ".join(dtypes[:10])
        )
    if problems:
        raise CheckpointError(f"{what} does not fit the model its config describes:\n  " + "\n  ".join(problems))


def read_weights(path: Path, what: str, expected: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file after :func:`read_header` and, when ``expected`` (a state dict, e.g. of a
    meta-device model) is given, after checking names, shapes and dtype kinds against it; then
    :func:`check_finite`.

    Raises:
        CheckpointError: see :func:`read_header`, :func:`check_finite`; or tensors that do not fit.
    """
    table = read_header(path, what)
    for name, info in table.items():
        if info["dtype"] not in _FLOAT_DTYPES | {"I64", "I32", "I16", "I8", "U8", "BOOL"}:
            raise CheckpointError(
                f"{what}: tensor {name!r} in {str(path)!r} has dtype {info['dtype']}, which zeromamba does not load"
            )
    if expected is not None:
        _check_against(table, expected, f"{what} ({path.name})")
    import safetensors.torch

    try:
        tensors = safetensors.torch.load_file(str(path), device="cpu")
    except Exception as e:  # SafetensorError: what the header check cannot see
        raise _invalid(path, what, str(e)) from None
    check_finite(tensors, f"{what} ({path.name})")
    return tensors
