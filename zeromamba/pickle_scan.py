"""Reading what a pickle would import and call, without running it.

A pickle names every Python object it will use (``os.system``, ``builtins.exec``, a class to build)
through its GLOBAL / STACK_GLOBAL / INST opcodes, and calls objects with REDUCE / NEWOBJ / OBJ /
INST. :func:`scan_pickles` decodes the opcodes itself, byte by byte as CPython's unpickler reads
them, and follows the unpickler's stack, marks and memo (``MEMOIZE`` stores at ``len(memo)``), so
it knows which object each call is applied to and which strings a STACK_GLOBAL joins.

Nothing is guessed: an unknown opcode, an argument the scanner does not read exactly as the
unpickler would (``I0x1``), a length that runs past the data, a stack or memo the unpickler would
not have, or a pickle over the opcode or time budget is a *problem*, and a caller refuses a pickle
with any problem. After a problem whose extent is known (a malformed line argument) the scan
goes on, so that the imports after it are still named. A leaf module: no torch.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import mmap
import re
import time
from typing import Any

from .pickle_report import OPAQUE, UNNAMED_CALL, UNNAMED_GLOBAL, Global, PickleReport

__all__ = ["MAX_OPCODES", "MAX_PROBLEMS", "MAX_SECONDS", "scan_pickles"]

#: a real checkpoint's pickle has tens of thousands of opcodes; each can make at most one object
MAX_OPCODES = 2_000_000
#: the scan gives up (a problem) after this long, whatever the data
MAX_SECONDS = 30.0
#: problems listed (one is enough to refuse; a few help to say why)
MAX_PROBLEMS = 10
#: integers longer than this many bytes are not tracked (their value is never needed)
_MAX_INT_BYTES = 16
_HIGHEST_PROTOCOL = 5


class _Stop(Exception):
    """The scan cannot go on (the opcode's extent is unknown)."""


_DECIMAL = re.compile(rb"[+-]?[0-9]+")
_UNSIGNED = re.compile(rb"[0-9]+")
_FLOAT = re.compile(rb"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|nan)")


def _qualified(module: str, attr: str, proto: int) -> str:
    """``module.attr`` as the unpickler imports it: protocols 0-2 map Python 2 names
    (``__builtin__.exec`` -> ``builtins.exec``), as ``find_class`` does."""
    if proto < 3:
        module, attr = _compat_pickle.NAME_MAPPING.get((module, attr), (module, attr))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{attr}"


class _Scanner:
    def __init__(
        self, data: Any, report: PickleReport, max_opcodes: int, deadline: float, inspect: frozenset[str]
    ) -> None:
        self.inspect = inspect
        # bytes, bytearray and mmap index to ints, slice to bytes and find(); others are copied once
        self.data = data if isinstance(data, (bytes, bytearray, mmap.mmap)) else bytes(data)
        self.n = len(self.data)
        self.report = report
        self.max_opcodes = max_opcodes
        self.deadline = deadline

    # --- reading arguments -------------------------------------------------------------------
    def _take(self, pos: int, size: int, what: str) -> bytes:
        if size < 0 or pos + size > self.n:
            self.report.truncated = size >= 0
            raise self._fatal(pos, f"{what} declares {size:,} bytes but only {max(self.n - pos, 0):,} remain")
        return bytes(self.data[pos : pos + size])

    def _line(self, pos: int, what: str) -> tuple[bytes, int]:
        end = self.data.find(b"\n", pos)
        if end < 0:
            self.report.truncated = True
            raise self._fatal(pos, f"{what} has no end of line")
        return bytes(self.data[pos:end]), end + 1

    def _uint(self, pos: int, size: int, what: str) -> int:
        return int.from_bytes(self._take(pos, size, what), "little")

    def _fatal(self, pos: int, message: str) -> _Stop:
        self._problem(pos, message)
        return _Stop()

    def _problem(self, pos: int, message: str) -> None:
        problems = self.report.problems
        if len(problems) < MAX_PROBLEMS:
            problems.append(f"byte {pos}: {message}")
        elif len(problems) == MAX_PROBLEMS:
            problems.append("and more")

    # --- the stack, as the unpickler keeps it: values, and marks as stack heights ------------------
    def _pop(self, pos: int, op: str) -> Any:
        fence = self.marks[-1] if self.marks else 0
        if len(self.stack) <= fence:
            self._problem(pos, f"{op} finds no value on the stack")
            return OPAQUE
        return self.stack.pop()

    def _top(self, pos: int, op: str) -> Any:
        fence = self.marks[-1] if self.marks else 0
        if len(self.stack) <= fence:
            self._problem(pos, f"{op} finds no value on the stack")
            return OPAQUE
        return self.stack[-1]

    def _target(self, pos: int, op: str) -> None:
        """The object that SETITEM(S), APPEND(S), ADDITEMS or BUILD changes: never an import itself (that would
        set items or attributes of a class or function; no pickler writes it)."""
        if isinstance(self._top(pos, op), Global):
            self._problem(pos, f"{op} changes an imported object itself")

    def _pop_mark(self, pos: int, op: str) -> list[Any]:
        if not self.marks:
            self._problem(pos, f"{op} finds no MARK")
            items, self.stack = self.stack, []
            return items
        k = self.marks.pop()
        items = self.stack[k:]
        del self.stack[k:]
        return items

    def _call(self, callee: Any, args: Any = None) -> None:
        name = callee.name if isinstance(callee, Global) else UNNAMED_CALL
        self.report.calls[name] = None
        if name in self.inspect:
            self.report.call_arguments.append((name, args))

    def _import(self, module: str, attr: str) -> Global:
        g = Global(_qualified(module, attr, self.proto))
        self.report.imports[g.name] = None
        return g

    @staticmethod
    def _text(raw: bytes) -> Any:
        """A STRING / BINSTRING value as the unpickler decodes it (torch.load passes utf-8)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return OPAQUE

    # --- one pickle ----------------------------------------------------------------------------
    def pickle(self, pos: int) -> int:
        """Decode the pickle at ``pos``; the offset after its STOP. Raises _Stop when it cannot go on."""
        self.stack: list[Any] = []
        self.marks: list[int] = []
        memo: dict[int, Any] = {}
        self.proto = 0
        report = self.report
        data, stack, push = self.data, self.stack, self.stack.append
        frame_end = -1  # where the current FRAME ends (-1: outside any frame)
        while True:
            if frame_end >= 0 and pos >= frame_end:
                if pos > frame_end:  # CPython's unpickler drops the rest of the frame, pickle.py stops
                    raise self._fatal(pos, "an opcode runs past the end of its FRAME")
                frame_end = -1
            if pos >= self.n:
                self.report.truncated = True
                raise self._fatal(pos, "the data ends before the pickle's STOP")
            report.opcodes += 1
            if report.opcodes > self.max_opcodes:
                raise self._fatal(pos, f"more than {self.max_opcodes:,} opcodes (no checkpoint has that many)")
            if not report.opcodes & 0xFFF and time.monotonic() > self.deadline:
                raise self._fatal(pos, "the scan ran out of time")
            at = pos
            code = data[pos]
            pos += 1
            if code == 0x71:  # q BINPUT
                memo[self._uint(pos, 1, "BINPUT")] = self._top(at, "BINPUT")
                pos += 1
            elif code == 0x68:  # h BINGET
                idx = self._uint(pos, 1, "BINGET")
                pos += 1
                push(self._get(memo, idx, at))
            elif code == 0x4B:  # K BININT1
                push(self._uint(pos, 1, "BININT1"))
                pos += 1
            elif code == 0x58:  # X BINUNICODE
                size = self._uint(pos, 4, "BINUNICODE")
                push(self._unicode(pos + 4, size, "BINUNICODE"))
                pos += 4 + size
            elif code == 0x8C:  # SHORT_BINUNICODE
                size = self._uint(pos, 1, "SHORT_BINUNICODE")
                push(self._unicode(pos + 1, size, "SHORT_BINUNICODE"))
                pos += 1 + size
            elif code == 0x28:  # ( MARK
                self.marks.append(len(stack))
            elif code == 0x74:  # t TUPLE
                push(tuple(self._pop_mark(at, "TUPLE")))
            elif code == 0x52:  # R REDUCE
                args = self._pop(at, "REDUCE")
                self._call(self._pop(at, "REDUCE"), args)
                push(OPAQUE)
            elif code == 0x94:  # MEMOIZE: the unpickler stores at len(memo)
                memo[len(memo)] = self._top(at, "MEMOIZE")
            elif code in (0x85, 0x86, 0x87):  # TUPLE1, TUPLE2, TUPLE3
                items = [self._pop(at, "TUPLEn") for _ in range(code - 0x84)]
                push(tuple(reversed(items)))
            elif code == 0x63:  # c GLOBAL
                module, pos = self._line(pos, "GLOBAL")
                attr, pos = self._line(pos, "GLOBAL")
                push(self._global(module, attr, at, "utf-8"))
            elif code == 0x93:  # STACK_GLOBAL
                attr, module = self._pop(at, "STACK_GLOBAL"), self._pop(at, "STACK_GLOBAL")
                if isinstance(module, str) and isinstance(attr, str):
                    push(self._import(module, attr))
                else:
                    self._problem(at, "STACK_GLOBAL of values that are not literal strings")
                    report.imports[UNNAMED_GLOBAL] = None
                    push(Global(UNNAMED_GLOBAL))
            elif code == 0x4A:  # J BININT
                push(int.from_bytes(self._take(pos, 4, "BININT"), "little", signed=True))
                pos += 4
            elif code == 0x4D:  # M BININT2
                push(self._uint(pos, 2, "BININT2"))
                pos += 2
            elif code == 0x6A:  # j LONG_BINGET
                idx = self._uint(pos, 4, "LONG_BINGET")
                pos += 4
                push(self._get(memo, idx, at))
            elif code == 0x72:  # r LONG_BINPUT
                memo[self._memo_index(self._uint(pos, 4, "LONG_BINPUT"), at)] = self._top(at, "LONG_BINPUT")
                pos += 4
            elif code in (0x7D, 0x5D, 0x8F):  # } EMPTY_DICT, ] EMPTY_LIST, EMPTY_SET
                push(OPAQUE)
            elif code == 0x29:  # ) EMPTY_TUPLE
                push(())
            elif code == 0x4E:  # N NONE
                push(None)
            elif code in (0x88, 0x89):  # NEWTRUE, NEWFALSE
                push(code == 0x88)
            elif code == 0x73:  # s SETITEM
                self._pop(at, "SETITEM")
                self._pop(at, "SETITEM")
                self._target(at, "SETITEM")
            elif code == 0x75:  # u SETITEMS
                if len(self._pop_mark(at, "SETITEMS")) % 2:
                    self._problem(at, "SETITEMS of an odd number of items")
                self._target(at, "SETITEMS")
            elif code == 0x61:  # a APPEND
                self._pop(at, "APPEND")
                self._target(at, "APPEND")
            elif code in (0x65, 0x90):  # e APPENDS, ADDITEMS
                self._pop_mark(at, "APPENDS")
                self._target(at, "APPENDS")
            elif code == 0x62:  # b BUILD (calls __setstate__ of an object a call built)
                self._pop(at, "BUILD")
                self._target(at, "BUILD")
            elif code == 0x51:  # Q BINPERSID
                report.persistent_ids.append(self._pop(at, "BINPERSID"))
                push(OPAQUE)
            elif code == 0x81:  # NEWOBJ: cls.__new__(cls, *args)
                self._pop(at, "NEWOBJ")
                self._call(self._pop(at, "NEWOBJ"))
                push(OPAQUE)
            elif code == 0x92:  # NEWOBJ_EX
                self._pop(at, "NEWOBJ_EX")
                self._pop(at, "NEWOBJ_EX")
                self._call(self._pop(at, "NEWOBJ_EX"))
                push(OPAQUE)
            elif code == 0x6F:  # o OBJ: MARK cls args...
                items = self._pop_mark(at, "OBJ")
                if not items:
                    self._problem(at, "OBJ without a class")
                self._call(items[0] if items else OPAQUE, tuple(items[1:]))
                push(OPAQUE)
            elif code == 0x69:  # i INST: module and class on lines, arguments since the MARK
                module, pos = self._line(pos, "INST")
                attr, pos = self._line(pos, "INST")
                cls = self._global(module, attr, at, "ascii")
                self._call(cls, tuple(self._pop_mark(at, "INST")))
                push(OPAQUE)
            elif code == 0x80:  # PROTO
                proto = self._uint(pos, 1, "PROTO")
                pos += 1
                if proto > _HIGHEST_PROTOCOL:
                    raise self._fatal(at, f"unsupported pickle protocol {proto}")
                self.proto = proto
            elif code == 0x95:  # FRAME: the frame's bytes are opcodes, read on
                if frame_end >= 0:
                    raise self._fatal(at, "a FRAME inside a FRAME")
                size = self._uint(pos, 8, "FRAME")
                pos += 8
                if size > self.n - pos:
                    report.truncated = True
                    raise self._fatal(at, f"FRAME declares {size:,} bytes but only {self.n - pos:,} remain")
                frame_end = pos + size
            elif code == 0x2E:  # . STOP
                if frame_end >= 0 and pos > frame_end:
                    raise self._fatal(at, "an opcode runs past the end of its FRAME")
                value = self._pop(at, "STOP")
                report.results.append(value)
                return pos
            elif code == 0x30:  # 0 POP (a value, else the last MARK)
                if len(stack) > (self.marks[-1] if self.marks else 0):
                    stack.pop()
                elif self.marks:
                    self.marks.pop()
                else:
                    self._problem(at, "POP of an empty stack")
            elif code == 0x31:  # 1 POP_MARK
                self._pop_mark(at, "POP_MARK")
            elif code == 0x32:  # 2 DUP
                push(self._top(at, "DUP"))
            elif code in (0x64, 0x6C, 0x91):  # d DICT, l LIST, FROZENSET
                items = self._pop_mark(at, "DICT/LIST/FROZENSET")
                if code == 0x64 and len(items) % 2:
                    self._problem(at, "DICT of an odd number of items")
                push(OPAQUE)
            elif code == 0x47:  # G BINFLOAT
                self._take(pos, 8, "BINFLOAT")
                pos += 8
                push(OPAQUE)
            elif code in (0x42, 0x43, 0x8E, 0x96):  # BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                width = {0x42: 4, 0x43: 1, 0x8E: 8, 0x96: 8}[code]
                size = self._uint(pos, width, "a bytes opcode")
                pos += width
                if size > self.n - pos:
                    report.truncated = True
                    raise self._fatal(at, f"a bytes opcode declares {size:,} bytes but only {self.n - pos:,} remain")
                pos += size
                push(OPAQUE)
            elif code == 0x8D:  # BINUNICODE8
                size = self._uint(pos, 8, "BINUNICODE8")
                push(self._unicode(pos + 8, size, "BINUNICODE8"))
                pos += 8 + size
            elif code in (0x54, 0x55):  # T BINSTRING (signed 4-byte length), U SHORT_BINSTRING
                width = 4 if code == 0x54 else 1
                size = int.from_bytes(self._take(pos, width, "BINSTRING"), "little", signed=code == 0x54)
                push(self._text(self._take(pos + width, size, "BINSTRING")))
                pos += width + size
            elif code in (0x8A, 0x8B):  # LONG1, LONG4 (signed 4-byte length)
                width = 1 if code == 0x8A else 4
                size = int.from_bytes(self._take(pos, width, "LONG"), "little", signed=code == 0x8B)
                raw = self._take(pos + width, size, "LONG")
                push(int.from_bytes(raw, "little", signed=True) if size <= _MAX_INT_BYTES else OPAQUE)
                pos += width + size
            elif code in (0x49, 0x4C):  # I INT, L LONG: decimal lines
                line, pos = self._line(pos, "INT")
                push(self._decimal(line, at, code == 0x4C))
            elif code == 0x46:  # F FLOAT
                line, pos = self._line(pos, "FLOAT")
                if not _FLOAT.fullmatch(line):
                    self._problem(at, f"FLOAT argument {line[:40]!r} is not read exactly as the unpickler reads it")
                push(OPAQUE)
            elif code == 0x53:  # S STRING: a quoted, escaped line
                line, pos = self._line(pos, "STRING")
                push(self._string(line, at))
            elif code == 0x56:  # V UNICODE: raw-unicode-escape line
                line, pos = self._line(pos, "UNICODE")
                try:
                    push(codecs.raw_unicode_escape_decode(line)[0])
                except UnicodeDecodeError:
                    self._problem(at, "UNICODE argument is not raw-unicode-escape text")
                    push(OPAQUE)
            elif code in (0x67, 0x70):  # g GET, p PUT: decimal lines
                line, pos = self._line(pos, "GET/PUT")
                if not _UNSIGNED.fullmatch(line):
                    self._problem(at, f"memo index {line[:40]!r} is not read exactly as the unpickler reads it")
                    if code == 0x67:
                        push(OPAQUE)
                elif code == 0x67:
                    push(self._get(memo, int(line), at))
                else:
                    memo[self._memo_index(int(line), at)] = self._top(at, "PUT")
            elif code == 0x50:  # P PERSID: an ASCII line
                line, pos = self._line(pos, "PERSID")
                try:
                    report.persistent_ids.append(line.decode("ascii"))
                except UnicodeDecodeError:
                    self._problem(at, "PERSID argument is not ASCII")
                push(OPAQUE)
            elif code in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4: an import from the copyreg registry
                width = {0x82: 1, 0x83: 2, 0x84: 4}[code]
                ext = int.from_bytes(self._take(pos, width, "EXT"), "little", signed=code == 0x84)
                pos += width
                report.imports[f"<extension code {ext}>"] = None
                push(Global(f"<extension code {ext}>"))
            elif code == 0x97:  # NEXT_BUFFER: out-of-band data, which a file cannot carry
                self._problem(at, "NEXT_BUFFER (out-of-band buffers)")
                push(OPAQUE)
            elif code == 0x98:  # READONLY_BUFFER
                self._top(at, "READONLY_BUFFER")
            else:
                raise self._fatal(at, f"unknown opcode 0x{code:02x}")

    def _memo_index(self, idx: int, at: int) -> int:
        """A PUT's index; one beyond any a pickler writes makes CPython's unpickler allocate a memo table
        that large (8 bytes per index), so it is a problem."""
        if idx > self.max_opcodes:
            self._problem(at, f"memo index {idx:,} (a pickler numbers them from 0)")
        return idx

    def _get(self, memo: dict[int, Any], idx: int, at: int) -> Any:
        if idx not in memo:
            self._problem(at, f"memo index {idx} was never stored")
            return OPAQUE
        return memo[idx]

    def _global(self, module: bytes, attr: bytes, at: int, encoding: str) -> Global:
        try:
            return self._import(module.decode(encoding), attr.decode(encoding))
        except UnicodeDecodeError:
            self._problem(at, f"an import name that is not {encoding}")
            self.report.imports[UNNAMED_GLOBAL] = None
            return Global(UNNAMED_GLOBAL)

    def _unicode(self, pos: int, size: int, what: str) -> Any:
        raw = self._take(pos, size, what)
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            self._problem(pos, f"{what} is not UTF-8")
            return OPAQUE

    def _decimal(self, line: bytes, at: int, long: bool) -> Any:
        body = line[:-1] if long and line.endswith(b"L") else line
        if not _DECIMAL.fullmatch(body):
            self._problem(at, f"integer argument {line[:40]!r} is not read exactly as the unpickler reads it")
            return OPAQUE
        if not long and body in (b"00", b"01"):
            return body == b"01"
        return int(body) if len(body) <= 40 else OPAQUE

    def _string(self, line: bytes, at: int) -> Any:
        if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
            self._problem(at, "STRING argument is not quoted")
            return OPAQUE
        try:
            return self._text(codecs.escape_decode(line[1:-1])[0])
        except ValueError:
            self._problem(at, "STRING argument has a bad escape")
            return OPAQUE


def scan_pickles(
    data: Any,
    start: int = 0,
    count: int = 1,
    *,
    max_opcodes: int = MAX_OPCODES,
    max_seconds: float = MAX_SECONDS,
    inspect_calls: frozenset[str] = frozenset(),
) -> PickleReport:
    """Scan up to ``count`` pickles stored back to back in ``data`` (bytes, or any buffer), from ``start``.

    The scan stops after ``count`` pickles, at the end of the data when it falls between two pickles,
    or at a problem it cannot read past (see the module docstring); every problem is in the report's
    ``problems``. The arguments of calls of ``inspect_calls`` are kept (a callee that calls one of its
    arguments). Nothing is unpickled and nothing is read past ``data``.
    """
    report = PickleReport()
    scanner = _Scanner(data, report, max_opcodes, time.monotonic() + max_seconds, inspect_calls)
    pos = start
    for _ in range(count):
        if pos >= scanner.n:
            break
        try:
            pos = scanner.pickle(pos)
        except _Stop:
            break
        report.ends.append(pos)
    return report
