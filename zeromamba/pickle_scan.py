"""Reading a pickle's imports without running it.

A pickle names every Python object it will call (``os.system``, ``builtins.exec``, a class to
build) through its GLOBAL / STACK_GLOBAL / INST opcodes. :func:`pickle_globals` walks the opcodes
with :mod:`pickletools` (which only decodes them) and lists those names, so a checkpoint can be
refused naming exactly what it asked for, whatever pickle protocol it was written with, before
any unpickler sees it. A leaf module: no torch.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
from collections.abc import Iterable
from typing import BinaryIO

__all__ = ["UNNAMED_GLOBAL", "pickle_globals", "refused_globals"]

#: stands for a STACK_GLOBAL whose module or name is not a literal string (so it cannot be named)
UNNAMED_GLOBAL = "<a global built at load time>"

_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_EXT_OPS = {"EXT1", "EXT2", "EXT4"}


# os.system pickles under the platform module's name
_DISPLAY_MODULES = {"posix": "os", "nt": "os"}


def _qualified(module: str, attr: str) -> str:
    """``module.attr`` as Python 3 imports it: the Python 2 names that protocols 0-2 write are mapped
    as the unpickler maps them (``__builtin__.exec`` -> ``builtins.exec``)."""
    module, attr = _compat_pickle.NAME_MAPPING.get((module, attr), (module, attr))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{_DISPLAY_MODULES.get(module, module)}.{attr}"


def _one_pickle(stream: BinaryIO, found: list[str]) -> None:
    """Add the globals of the pickle at ``stream``'s position to ``found`` (it ends after the STOP)."""
    pushed: list[object] = []  # what recent opcodes pushed: strings, or None for anything else
    memo: dict[object, object] = {}
    memo_next = 0
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name in ("GLOBAL", "INST"):  # arg is "module name"
            module, _, attr = str(arg).partition(" ")
            found.append(_qualified(module, attr))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
            del pushed[-2:]
            found.append(
                _qualified(module, attr) if isinstance(module, str) and isinstance(attr, str) else UNNAMED_GLOBAL
            )
            pushed.append(None)
        elif name in _EXT_OPS:  # an object from the copyreg extension registry: cannot be named
            found.append(f"<extension code {arg}>")
            pushed.append(None)
        elif name in _STRING_OPS:
            pushed.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
        elif name in _PUT_OPS:
            memo[arg] = pushed[-1] if pushed else None
        elif name == "MEMOIZE":
            memo[memo_next] = pushed[-1] if pushed else None
            memo_next += 1
        elif name in _GET_OPS:
            pushed.append(memo.get(arg))
        elif name == "STOP":
            break
        else:
            pushed.append(None)
        if len(pushed) > 64:  # only the last two matter for STACK_GLOBAL
            del pushed[:-8]


def pickle_globals(data: bytes | BinaryIO, max_pickles: int = 5) -> list[str]:
    """Every ``module.name`` the pickles at the start of ``data`` would import, in order.

    ``data`` may hold several pickles back to back (PyTorch's legacy format writes five before the
    raw tensor bytes); scanning stops at the end, at bytes that are not a pickle, or after
    ``max_pickles``. Nothing is unpickled.
    """
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    found: list[str] = []
    for _ in range(max_pickles):
        start = stream.tell()
        if not stream.read(1):
            break
        stream.seek(start)
        try:
            _one_pickle(stream, found)
        except (ValueError, EOFError, UnicodeDecodeError, IndexError, KeyError):
            break  # not (or no longer) a pickle: the loader itself judges what follows
    return found


def refused_globals(found: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The names in ``found`` that are not in ``allowed``, each once, in order of appearance."""
    allowed_set = set(allowed)
    return list(dict.fromkeys(g for g in found if g not in allowed_set))
