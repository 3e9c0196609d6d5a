"""Reading a PyTorch ``.pth`` / ``.pt`` file from outside, without running anything in it.

One open file is read twice, never reopened: first the bytes that ``torch.load`` would unpickle are
found as ``torch.load`` finds them (:mod:`zeromamba.torch_container`: the zip archive's
``data.pkl``, read through PyTorch's own archive reader, or a legacy file's five pickles) and scanned
(:mod:`zeromamba.pickle_scan`). The file is refused, naming what it asked for, when a pickle

* imports anything beyond what ``torch.load(weights_only=True)`` builds by itself and
  ``argparse.Namespace``;
* calls anything beyond the tensor rebuilders, plain containers and ``argparse.Namespace``: a call
  that allocates from a number in the file (``bytearray(n)``, a storage or legacy tensor class, a
  quantized tensor) or builds a tensor without dense CPU data (meta, sparse, nested, subclasses) is
  refused before it is made;
* cannot be read exactly as the unpickler would read it, has more opcodes than any checkpoint, or
  declares storages larger than the file.

Only then does ``torch.load(weights_only=True)`` read the same open file, as a second guard. The
tensors it returns are checked as well (:func:`check_tensors`): dense, on the CPU, no stride 0, no
more elements than their storage holds.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
from collections.abc import Mapping
from typing import Any, BinaryIO

import torch

from ..errors import CheckpointError
from ..fileio import open_regular
from ..pickle_report import UNNAMED_CALL, Global, PickleReport, describe_import
from ..pickle_scan import scan_pickles
from ..torch_container import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    AmbiguousZipError,
    container_kind,
    find_member,
    pickles_any_reader_could_take,
    read_zip_directory,
)

__all__ = [
    "ALLOWED_CALLS",
    "MAX_PICKLE_BYTES",
    "SAFE_GLOBALS",
    "allowed_imports",
    "check_tensors",
    "read_torch_checkpoint",
]

#: the only classes a checkpoint may contain besides tensors and plain containers
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

#: the largest pickle (a zip's ``data.pkl``, or a legacy file's pickles together) zeromamba reads; the
#: tensors' bytes are stored beside it, so a real checkpoint's pickle is a few MB
MAX_PICKLE_BYTES = 256 << 20

_TENSOR_REBUILDERS = frozenset(
    {
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
    }
)
#: what a checkpoint's pickle may call: each builds a view of the file's own storages or a small
#: value, never an allocation sized by a number in the file
ALLOWED_CALLS = _TENSOR_REBUILDERS | {
    "torch._tensor._rebuild_from_type_v2",  # calls its first argument: checked to be a tensor rebuilder
    "collections.OrderedDict",
    "collections.Counter",
    "builtins.set",
    "builtins.complex",
    "_codecs.encode",  # how protocol 2 stores bytes
    "torch.Size",
    "torch.device",
    "torch.serialization._get_layout",
    "argparse.Namespace",
}
_TENSOR_TYPES = frozenset({"torch.Tensor", "torch.nn.parameter.Parameter"})
_WHY_NOT = {
    "builtins.bytearray": "a bytearray of a size the file chooses",
    "torch._utils._rebuild_meta_tensor_no_storage": "a tensor on the meta device, without data",
    "torch._utils._rebuild_qtensor": "a quantized tensor, allocated at the shape the file declares",
    "torch._utils._rebuild_sparse_tensor": "a sparse tensor",
    "torch._utils._rebuild_nested_tensor": "a nested tensor",
    "torch._utils._rebuild_wrapper_subclass": "a tensor subclass without storage",
    "torch._utils._rebuild_device_tensor_from_numpy": "a tensor from a numpy array",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": "a tensor copied to another device",
    UNNAMED_CALL: "an object that is not a named function or class",
}
_LEGACY_PICKLES = 5  # magic number, protocol version, system info, the object, the storage keys
_INSPECT = frozenset({"torch._tensor._rebuild_from_type_v2"})  # calls its first argument


def allowed_imports() -> dict[str, Any]:
    """What ``torch.load(weights_only=True)`` builds by itself, plus :data:`SAFE_GLOBALS`: name -> object."""
    allowed = {f"{c.__module__}.{c.__qualname__}": c for c in SAFE_GLOBALS}
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed.update(_get_allowed_globals())
    except (ImportError, AttributeError):  # pragma: no cover - a torch without the private table
        pass
    return allowed


def _names(names: list[str]) -> str:
    return ", ".join(describe_import(n) for n in names[:10]) + (" ..." if len(names) > 10 else "")


def _refuse_imports(source: str, names: list[str], malformed: bool = False, also: str = "") -> CheckpointError:
    if malformed:
        also += " (and its pickle is malformed, as a hand-made one would be)"
    return CheckpointError(
        f"{source} asks the unpickler to import {_names(names)}{also}: loading it could run code, so zeromamba "
        "refuses it (a checkpoint may hold only tensors, plain containers and argparse.Namespace). Nothing in it "
        "was run. If you trust the file, re-save it as a plain state dict (torch.save(model.state_dict(), ...)) "
        "or as safetensors."
    )


def _refuse_calls(source: str, names: list[str]) -> CheckpointError:
    listed = "; ".join(
        f"{describe_import(n)} ({_WHY_NOT.get(n, 'memory sized by a number in the file, or code')})" for n in names[:10]
    )
    return CheckpointError(
        f"{source} asks the unpickler to call {listed}{' ...' if len(names) > 10 else ''}: zeromamba refuses it "
        "before anything is built. Nothing in it was run. A checkpoint may hold only dense tensors, plain containers "
        "and argparse.Namespace; re-save it with torch.save(model.state_dict(), ...) or as safetensors."
    )


def _refuse_malformed(source: str, report: PickleReport) -> CheckpointError:
    problems = "; ".join(report.problems[:3])
    return CheckpointError(
        f"cannot read {source} as a PyTorch checkpoint: its pickle is not one a pickler writes, or cannot be read "
        f"exactly as the unpickler reads it ({problems}), so what it would do cannot be checked: refused unread. "
        "The file is damaged, hand-made or not a checkpoint."
    )


def _check_report(source: str, report: PickleReport, allowed: Mapping[str, Any], also: str = "") -> None:
    imports = [n for n in report.imports if n not in allowed]
    if imports:
        raise _refuse_imports(source, imports, bool(report.problems), also)
    calls = [n for n in report.calls if n not in ALLOWED_CALLS]
    for callee, args in report.call_arguments:  # _rebuild_from_type_v2(func, new_type, args, state) calls func
        func = args[0] if isinstance(args, tuple) and len(args) == 4 else None
        new_type = args[1] if func is not None else None
        if not (isinstance(func, Global) and func.name in _TENSOR_REBUILDERS):
            calls.append(func.name if isinstance(func, Global) else UNNAMED_CALL)
        elif not (isinstance(new_type, Global) and new_type.name in _TENSOR_TYPES):
            calls.append(callee)
    if calls:
        raise _refuse_calls(source, list(dict.fromkeys(calls)))
    if report.problems:
        raise _refuse_malformed(source, report)


def _storage_bytes(source: str, report: PickleReport, allowed: Mapping[str, Any]) -> int:
    """The bytes of the distinct storages the persistent ids declare (each must be a storage)."""
    declared: dict[str, int] = {}
    for pid in report.persistent_ids:
        ok = isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], Global)
        numel = pid[4] if ok else None
        kind = allowed.get(pid[1].name) if ok else None
        if kind is torch.UntypedStorage:
            itemsize = 1
        elif kind is not None and isinstance(getattr(kind, "dtype", None), torch.dtype):
            itemsize = kind.dtype.itemsize
        else:
            itemsize = 0
        if not (itemsize and isinstance(numel, int) and not isinstance(numel, bool) and numel >= 0):
            raise CheckpointError(f"{source}: its pickle refers to something other than a tensor storage: refused")
        declared[str(pid[2])] = numel * itemsize
    return sum(declared.values())


def _scan_zip(f: BinaryIO, size: int, source: str, allowed: Mapping[str, Any]) -> PickleReport:
    try:
        members = read_zip_directory(f, size, source)
    except AmbiguousZipError as e:  # refused; but first name what any reading of it would import
        for data in pickles_any_reader_could_take(f, size, MAX_PICKLE_BYTES):
            report = scan_pickles(data, inspect_calls=_INSPECT)
            report.problems.clear()  # the archive is refused anyway: say what it asks for
            _check_report(
                source, report, allowed, f" (and it is a zip archive that readers could read differently: {e.why})"
            )
        raise
    member = find_member(members, "data.pkl", source)
    if member.size > MAX_PICKLE_BYTES:
        raise CheckpointError(
            f"{source}: its pickle is {member.size:,} bytes, more than the {MAX_PICKLE_BYTES:,} a checkpoint's "
            "needs: refused unread"
        )
    f.seek(0)
    try:  # the record as torch.load reads it: PyTorch's own archive reader (miniz)
        data = torch._C.PyTorchFileReader(f).get_record("data.pkl")
    except (RuntimeError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {source} as a PyTorch checkpoint (damaged zip archive: {e})") from None
    if len(data) != member.size:
        raise CheckpointError(f"{source}: PyTorch's zip reader and zeromamba's disagree about its data.pkl: refused")
    return scan_pickles(data, inspect_calls=_INSPECT)


def _scan_legacy(f: BinaryIO, size: int, source: str, allowed: Mapping[str, Any]) -> PickleReport:
    """The five pickles at the start of a legacy file; their storages must fit in the bytes after them."""
    limit = min(size, MAX_PICKLE_BYTES)
    window = min(limit, 1 << 20)
    while True:  # read more of the file only while the pickles run past what was read
        f.seek(0)
        data = f.read(window)
        report = scan_pickles(
            data, count=_LEGACY_PICKLES, inspect_calls=frozenset({"torch._tensor._rebuild_from_type_v2"})
        )
        if not report.truncated or window >= limit:
            break
        window = min(window * 8, limit)
    if report.truncated and size > limit:
        report.problems.append(f"its pickles run past the first {MAX_PICKLE_BYTES:,} bytes")
    _check_report(source, report, allowed)
    if report.results[:2] != [LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION]:
        raise CheckpointError(
            f"cannot read {source} as a PyTorch checkpoint: it is neither a zip archive nor the legacy format "
            "(a plain pickle, or another kind of file)"
        )
    if len(report.ends) == _LEGACY_PICKLES:
        stored = _storage_bytes(source, report, allowed)
        room = size - report.ends[-1]
        if stored > room:
            raise CheckpointError(
                f"{source} declares {stored:,} bytes of tensor data but holds {max(room, 0):,} after its pickles "
                "(a truncated or forged file): refused before anything is allocated"
            )
    return report


def read_torch_checkpoint(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """What ``torch.load(path, weights_only=True)`` returns, after the checks in the module docstring.

    Raises:
        CheckpointError: a missing or non-regular file, a refused or malformed pickle (what it would
            import or call is named), or a file ``torch.load`` cannot read.
    """
    path = os.fspath(path)
    source = repr(path)
    try:
        fd, st = open_regular(path, CheckpointError, what)
    except FileNotFoundError:
        raise CheckpointError(f"{what} not found: {source}") from None
    allowed = allowed_imports()
    with os.fdopen(fd, "rb") as f:
        kind = container_kind(f.read(4))
        if kind == "zip":
            report = _scan_zip(f, st.st_size, source, allowed)
            _check_report(source, report, allowed)
            _storage_bytes(source, report, allowed)  # each persistent id is a storage (torch checks the sizes)
        else:
            _scan_legacy(f, st.st_size, source, allowed)
        f.seek(0)
        try:
            with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
                return torch.load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:  # the scan passed it; torch's own guard did not
            refused = _torch_refused_global(str(e))
            if refused:
                raise _refuse_imports(source, [refused]) from None
            raise CheckpointError(f"cannot read {source} as a PyTorch checkpoint: {_first_line(e)}") from None
        except Exception as e:  # truncated storages, wrong record sizes, out-of-bounds views, ...
            raise CheckpointError(f"cannot read {source} as a PyTorch checkpoint: {_first_line(e)}") from None


_TORCH_REFUSALS = (
    re.compile(r"GLOBAL (\S+) was not an allowed global"),
    re.compile(r"unsupported GLOBAL (\S+) whose module"),
    re.compile(r"Unsupported global: GLOBAL (\S+)"),
    re.compile(r"unrecognized function (\S+)"),
    re.compile(r"(\S+) must be \S+ to load"),
)


def _torch_refused_global(message: str) -> str | None:
    """The import ``torch.load``'s own guard refused, whatever its wording."""
    for pattern in _TORCH_REFUSALS:
        m = pattern.search(message)
        if m:
            return m.group(1).rstrip(".,:")
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


def check_tensors(tensors: Mapping[str, Any], source: str) -> None:
    """Each tensor is dense, on the CPU, has no stride 0 along a dimension longer than 1, and has no more
    elements than its storage holds from its offset (so nothing sized by its shape alone is ever built).

    Raises:
        CheckpointError: naming the first tensor that is not.
    """
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            continue
        where = f"{source}: tensor {name!r}"
        if t.device.type != "cpu" or t.layout != torch.strided:
            kind = "on the meta device (no data)" if t.is_meta else f"{t.layout} on {t.device}"
            raise CheckpointError(f"{where} is {kind}: only dense CPU tensors are read")
        shape, strides = tuple(t.shape), t.stride()
        if any(st == 0 and n > 1 for n, st in zip(shape, strides)):
            raise CheckpointError(
                f"{where} has shape {shape} but stride 0 ({t.numel():,} elements from one stored value per row): "
                "refused, since a model sized by it would not be what the file holds"
            )
        if any(st < 0 for st in strides):
            raise CheckpointError(f"{where} has a negative stride: refused")
        stored = t.untyped_storage().nbytes() // max(t.element_size(), 1) - t.storage_offset()
        reach = 1 + sum((n - 1) * st for n, st in zip(shape, strides)) if t.numel() else 0
        if t.numel() > stored or reach > stored:
            raise CheckpointError(
                f"{where} has shape {shape} ({t.numel():,} elements) but its storage holds {max(stored, 0):,} "
                "from its offset: refused"
            )
