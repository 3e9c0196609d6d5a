"""What a pickle scan found (:func:`zeromamba.pickle_scan.scan_pickles`): the imports and calls a
pickle would make, the values the scan tracks, the problems that make a caller refuse it. A leaf
module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["OPAQUE", "UNNAMED_CALL", "UNNAMED_GLOBAL", "Global", "Opaque", "PickleReport", "describe_import"]

#: stands for a STACK_GLOBAL whose module or name is not a literal string (so it cannot be named)
UNNAMED_GLOBAL = "<a global built at load time>"
#: stands for a call of an object that is not a named global (a result of another call, ...)
UNNAMED_CALL = "<an object built at load time>"

# os.system pickles under the platform module's name: say both
_PLATFORM_MODULES = {"posix": "os", "nt": "os"}


@dataclass(frozen=True)
class Global:
    """An imported object, by its ``module.name`` (after Python 2 names are mapped)."""

    name: str


class Opaque:
    """Any value the scan does not need to know (a float, a list, an object built by a call)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<value>"


OPAQUE = Opaque()


@dataclass
class PickleReport:
    """What :func:`zeromamba.pickle_scan.scan_pickles` found.

    Attributes:
        imports: every ``module.name`` imported, in order of first appearance (Python 2 names mapped
            as the unpickler maps them); ``<extension code N>`` for copyreg extensions.
        calls: the import each call is applied to (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``INST``), in order of
            first appearance, or :data:`UNNAMED_CALL`.
        persistent_ids: the persistent ids (``BINPERSID`` / ``PERSID``), as tracked values: tuples,
            strings, ints, :class:`Global`; anything else is an opaque placeholder.
        results: the value each complete pickle returns (tracked as above).
        ends: the offset just after each complete pickle's STOP.
        call_arguments: ``(callee, arguments)`` of each call of a callee in ``inspect_calls`` (arguments as
            tracked values: a tuple, or an opaque placeholder).
        truncated: whether the data ended inside a pickle (a longer read may complete it).
        problems: why the data cannot be read exactly as the unpickler would (empty when it can; the
            first :data:`zeromamba.pickle_scan.MAX_PROBLEMS`, then a count).
        opcodes: how many opcodes were decoded.
    """

    imports: dict[str, None] = field(default_factory=dict)
    calls: dict[str, None] = field(default_factory=dict)
    persistent_ids: list[Any] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    call_arguments: list[tuple[str, Any]] = field(default_factory=list)
    truncated: bool = False
    problems: list[str] = field(default_factory=list)
    opcodes: int = 0


def describe_import(name: str) -> str:
    """``name`` for a message: a platform module's name as the public one, then as pickled
    (``os.system (pickled as posix.system)``)."""
    module, _, attr = name.partition(".")
    public = _PLATFORM_MODULES.get(module)
    return f"{public}.{attr} (pickled as {name})" if public and attr else name
