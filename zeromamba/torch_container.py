"""The container ``torch.load`` sees in a checkpoint file, read exactly as it reads it.

``torch.load`` decides by the first four bytes alone: ``PK\\x03\\x04`` is a zip archive, read by
miniz, whose pickle is the member ``<prefix>/data.pkl`` (``<prefix>`` is the first member's folder;
miniz compares names without regard to ASCII case); anything else is the legacy format, five
pickles back to back and then the tensors' raw bytes. :func:`container_kind` decides the same way
(never by ``zipfile.is_zipfile``, which looks for an end record anywhere in the file).

:func:`read_zip_directory` then reads the archive only when every reader would read it alike:
one end record that ends the file, a zip64 end record only where both the locator and miniz look
for it, a central directory that ends where the end records start, members that do not overlap,
and no two names equal when case is ignored. Anything else is refused, so that the bytes a scan
reads are the bytes the unpickler runs. A leaf module: no torch.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from .errors import CheckpointError

__all__ = [
    "AmbiguousZipError",
    "LEGACY_MAGIC_NUMBER",
    "LEGACY_PROTOCOL_VERSION",
    "MAX_ZIP_RATIO",
    "ZIP_MAGIC",
    "ZipMember",
    "container_kind",
    "find_member",
    "pickles_any_reader_could_take",
    "read_member",
    "read_zip_directory",
]

ZIP_MAGIC = b"PK\x03\x04"
#: the first two pickles of a legacy-format file
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
#: a compressed member may expand at most this much (torch.save stores members uncompressed)
MAX_ZIP_RATIO = 20

_EOCD, _EOCD64, _LOCATOR = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"
_CENTRAL, _EOCD_SIZE, _EOCD64_SIZE, _LOCATOR_SIZE = b"PK\x01\x02", 22, 56, 20
# how far from the end miniz looks for the end record (the longest comment, plus its own buffer)
_TAIL = 0xFFFF + _EOCD_SIZE + 4096
_U32, _U16 = 0xFFFFFFFF, 0xFFFF


@dataclass(frozen=True)
class ZipMember:
    """One member of the archive, as its central directory entry and local header describe it."""

    name: bytes
    method: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int


def container_kind(head: bytes) -> str:
    """``"zip"`` or ``"legacy"``, from the file's first bytes, as ``torch.load`` decides."""
    return "zip" if head[:4] == ZIP_MAGIC else "legacy"


class AmbiguousZipError(CheckpointError):
    """A zip archive that zip readers could read differently (a :class:`CheckpointError`); ``why`` says how."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


def _refuse(source: str, why: str) -> AmbiguousZipError:
    return AmbiguousZipError(
        f"{source} is a zip archive that PyTorch and other zip readers could read differently ({why}): refused "
        "unread. A file torch.save wrote never looks like this; save it again with torch.save.",
        why,
    )


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def _plausible_eocd(tail: bytes, i: int, base: int) -> bool:
    """Whether the end-record signature at ``tail[i]`` starts a record some reader could take."""
    if i + _EOCD_SIZE > len(tail):
        return True  # a truncated record: a reader that looks at the last bytes stops here
    disk, cd_disk, n_disk, n_total, cd_size, cd_ofs = struct.unpack_from("<HHHHII", tail, i + 4)
    return disk == cd_disk == 0 and n_disk == n_total and (cd_ofs == _U32 or cd_ofs + cd_size <= base + i)


def _plausible_eocd64(tail: bytes, i: int, base: int) -> bool:
    if i + _EOCD64_SIZE > len(tail):
        return True
    _size, _made, _needed, disk, cd_disk, n_disk, n_total, cd_size, cd_ofs = struct.unpack_from(
        "<QHHIIQQQQ", tail, i + 4
    )
    return disk == cd_disk == 0 and n_disk == n_total and cd_ofs + cd_size <= base + i


def _end_records(f: BinaryIO, size: int, source: str) -> tuple[int, int, int, int]:
    """``(central directory offset, its size, entries, where the end records start)``."""
    base = max(size - _TAIL, 0)
    tail = _read_at(f, base, size - base)
    # miniz: the last signature with a whole record after it
    pos = -1
    i = tail.rfind(_EOCD)
    while i >= 0:
        if len(tail) - i >= _EOCD_SIZE:
            pos = i
            break
        i = tail.rfind(_EOCD, 0, i)
    if pos < 0:
        raise CheckpointError(
            f"cannot read {source} as a PyTorch checkpoint: it starts as a zip archive but has no end record"
        )
    disk, cd_disk, n_disk, n_total, cd_size, cd_ofs, comment = struct.unpack_from("<HHHHIIH", tail, pos + 4)
    if pos + _EOCD_SIZE + comment != len(tail):
        raise _refuse(source, f"{len(tail) - pos - _EOCD_SIZE - comment} bytes after the end record")
    if disk or cd_disk or n_disk != n_total:
        raise _refuse(source, "a multi-disk archive")
    start = base + pos
    if tail[pos - _LOCATOR_SIZE : pos - _LOCATOR_SIZE + 4] == _LOCATOR and pos >= _LOCATOR_SIZE:
        loc_disk, rec_ofs, disks = struct.unpack_from("<IQI", tail, pos - _LOCATOR_SIZE + 4)
        rec = start - _LOCATOR_SIZE - _EOCD64_SIZE
        if rec < 0 or rec_ofs != rec or loc_disk != 0 or disks != 1:
            raise _refuse(source, "its zip64 locator does not point to the zip64 end record just before it")
        raw = _read_at(f, rec, _EOCD64_SIZE)
        if raw[:4] != _EOCD64:
            raise _refuse(source, "no zip64 end record where its locator points")
        rec_size, _made, _needed, d64, cd64, n64_disk, n64, cd_size64, cd_ofs64 = struct.unpack_from(
            "<QHHIIQQQQ", raw, 4
        )
        if rec_size != _EOCD64_SIZE - 12 or d64 or cd64 or n64_disk != n64:
            raise _refuse(source, "a zip64 end record with extensible data or several disks")
        for small, big, sentinel in ((n_total, n64, _U16), (cd_size, cd_size64, _U32), (cd_ofs, cd_ofs64, _U32)):
            if small not in (big, sentinel):
                raise _refuse(source, "its zip64 and zip end records disagree")
        n_total, cd_size, cd_ofs, start = n64, cd_size64, cd_ofs64, rec
    elif _U32 in (cd_size, cd_ofs) or n_total == _U16:
        raise _refuse(source, "zip64 values without a zip64 end record")
    if cd_ofs + cd_size != start:
        raise _refuse(source, "its central directory does not end where the end record starts")
    # a second end record (of either kind) that another reader could take instead
    for sig, plausible, chosen in ((_EOCD, _plausible_eocd, pos), (_EOCD64, _plausible_eocd64, start - base)):
        i = tail.find(sig)
        while i >= 0:
            if i != chosen and plausible(tail, i, base):
                raise _refuse(source, "several end records")
            i = tail.find(sig, i + 1)
    return cd_ofs, cd_size, n_total, start


def _zip64_extra(extra: bytes, sizes: list[int]) -> None:
    """Replace the 0xFFFFFFFF values of ``[size, compressed size, header offset]`` from a zip64 extra field."""
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, i)
        if tag == 1:
            field = extra[i + 4 : i + 4 + length]
            k = 0
            for j, v in enumerate(sizes):
                if v == _U32:
                    if k + 8 > len(field):
                        raise ValueError("a short zip64 extra field")
                    sizes[j] = struct.unpack_from("<Q", field, k)[0]
                    k += 8
            return
        i += 4 + length


def _members(f: BinaryIO, cd_ofs: int, cd_size: int, n_total: int, strict: bool) -> list[ZipMember]:
    """The central directory's entries; ``strict`` also requires what only some readers check (each local
    header naming its member, the directory holding its entries and nothing else)."""
    central = _read_at(f, cd_ofs, cd_size)
    members: list[ZipMember] = []
    i = 0
    for _ in range(n_total):
        if central[i : i + 4] != _CENTRAL:
            raise ValueError("a central directory entry without its signature")
        (_made, _needed, flags, method, _t, _d, _crc, csize, usize, n, e, c, disk, _ia, _ea, hofs) = struct.unpack_from(
            "<4xHHHHHHIIIHHHHHII", central, i
        )
        name = central[i + 46 : i + 46 + n]
        if len(name) != n or i + 46 + n + e + c > len(central):
            raise ValueError("a central directory entry runs past the directory")
        sizes = [usize, csize, hofs]
        _zip64_extra(central[i + 46 + n : i + 46 + n + e], sizes)
        usize, csize, hofs = sizes
        if flags & 0x41 or disk != 0:
            raise ValueError("an encrypted or multi-disk member")
        if method not in (0, 8) or (method == 0 and usize != csize):
            raise ValueError(f"member {name!r} uses compression method {method} or has inconsistent sizes")
        local = _read_at(f, hofs, 30)
        if len(local) != 30 or local[:4] != ZIP_MAGIC:
            raise ValueError(f"member {name!r} has no local header where the directory says")
        ln, le = struct.unpack_from("<HH", local, 26)
        if strict and (_read_at(f, hofs + 30, ln) != name or struct.unpack_from("<H", local, 8)[0] != method):
            raise ValueError(f"member {name!r}'s local header names another file or method")
        data = hofs + 30 + ln + le
        if strict and data + csize > cd_ofs:
            raise ValueError(f"member {name!r} runs into the central directory")
        members.append(ZipMember(bytes(name), method, csize, usize, hofs, data))
        i += 46 + n + e + c
    if strict and i != cd_size:
        raise ValueError("its central directory holds more than its entries")
    return members


def read_zip_directory(f: BinaryIO, size: int, source: str) -> list[ZipMember]:
    """The members of the zip archive ``f`` (``size`` bytes), in central-directory order, checked as the
    module docstring says.

    Raises:
        AmbiguousZipError: an archive that readers could read differently (a :class:`CheckpointError`).
        CheckpointError: a damaged archive, a decompression bomb.
    """
    cd_ofs, cd_size, n_total, _cd_end = _end_records(f, size, source)
    try:
        members = _members(f, cd_ofs, cd_size, n_total, strict=True)
    except (ValueError, struct.error) as e:
        raise _refuse(source, str(e)) from None
    if not members:
        raise CheckpointError(f"{source} is an empty zip archive, not a PyTorch checkpoint")
    for m in members:
        if m.method == 8 and m.size > MAX_ZIP_RATIO * max(m.compressed_size, 1):
            raise CheckpointError(
                f"{source}: zip member {m.name.decode(errors='replace')!r} expands from {m.compressed_size:,} to "
                f"{m.size:,} bytes (a decompression bomb, or not a file torch.save wrote): refused unread"
            )
    spans = sorted((m.header_offset, m.data_offset + m.compressed_size, m.name) for m in members)
    if spans[0][0] != 0:
        raise _refuse(source, "bytes before its first member")
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise _refuse(source, f"members {a!r} and {b!r} overlap")
    seen: dict[bytes, bytes] = {}
    for m in members:
        other = seen.setdefault(m.name.lower(), m.name)
        if other is not m.name:
            raise _refuse(source, f"members {other!r} and {m.name!r} have the same name when case is ignored")
    return members


def _directories(f: BinaryIO, size: int) -> list[tuple[int, int, int]]:
    """Every ``(central directory offset, size, entries)`` some zip reader could take from the end records
    in the file's tail: each plausible end record's own values, and the zip64 end records right before its
    locator and where its locator points."""
    base = max(size - _TAIL, 0)
    tail = _read_at(f, base, size - base)
    found: list[tuple[int, int, int]] = []
    i = tail.rfind(_EOCD)
    while i >= 0:
        if i + _EOCD_SIZE <= len(tail) and _plausible_eocd(tail, i, base):
            n_total, cd_size, cd_ofs = struct.unpack_from("<HII", tail, i + 10)
            found.append((cd_ofs, cd_size, n_total))
            if i >= _LOCATOR_SIZE and tail[i - _LOCATOR_SIZE : i - _LOCATOR_SIZE + 4] == _LOCATOR:
                rec_ofs = struct.unpack_from("<Q", tail, i - _LOCATOR_SIZE + 8)[0]
                for rec in {base + i - _LOCATOR_SIZE - _EOCD64_SIZE, rec_ofs}:
                    raw = _read_at(f, rec, _EOCD64_SIZE) if 0 <= rec <= size - _EOCD64_SIZE else b""
                    if raw[:4] == _EOCD64:
                        n64, cd_size64, cd_ofs64 = struct.unpack_from("<QQQ", raw, 32)
                        found.append((cd_ofs64, cd_size64, n64))
        i = tail.rfind(_EOCD, 0, i)
    return list(dict.fromkeys(found))


def pickles_any_reader_could_take(f: BinaryIO, size: int, limit: int, record: str = "data.pkl") -> list[bytes]:
    """For naming what an ambiguous archive asks for: the bytes of every member named ``<folder>/<record>``
    (any case) in every central directory some reader could take; each at most ``limit`` bytes and
    expanding at most :data:`MAX_ZIP_RATIO` times (others are skipped)."""
    found: dict[tuple[int, int], bytes] = {}
    suffix = b"/" + record.encode()
    for cd_ofs, cd_size, n_total in _directories(f, size)[:8]:
        if cd_ofs + cd_size > size or n_total > cd_size // 46:
            continue
        try:
            members = _members(f, cd_ofs, cd_size, n_total, strict=False)
        except (ValueError, struct.error):
            continue
        for m in members:
            key = (m.data_offset, m.size)
            if not m.name.lower().endswith(suffix) or key in found or len(found) >= 16:
                continue
            if m.size > limit or (m.method == 8 and m.size > MAX_ZIP_RATIO * max(m.compressed_size, 1)):
                continue
            try:
                found[key] = read_member(f, m, limit, "")
            except CheckpointError:
                continue
    return list(found.values())


def find_member(members: list[ZipMember], record: str, source: str) -> ZipMember:
    """The member ``torch.load`` reads as ``record`` (e.g. ``"data.pkl"``): ``<folder of the first
    member>/<record>``, names compared without regard to ASCII case, as miniz compares them.

    Raises:
        CheckpointError: the first member is in no folder, or there is no such member.
    """
    first = members[0].name
    if b"/" not in first:
        raise CheckpointError(
            f"{source} is a zip archive but not a PyTorch checkpoint (its first member {first!r} is in no folder)"
        )
    wanted = (first.split(b"/", 1)[0] + b"/" + record.encode()).lower()
    for m in members:
        if m.name.lower() == wanted:
            return m
    raise CheckpointError(
        f"{source} is a zip archive but not a PyTorch checkpoint (no {wanted.decode(errors='replace')!r})"
    )


def read_member(f: BinaryIO, member: ZipMember, limit: int, source: str) -> bytes:
    """The member's bytes (a member of :func:`read_zip_directory`), refused unread when it is over ``limit`` bytes."""
    name = member.name.decode(errors="replace")
    if member.size > limit:
        raise CheckpointError(
            f"{source}: member {name!r} is {member.size:,} bytes, more than the {limit:,} it may have: refused unread"
        )
    raw = _read_at(f, member.data_offset, member.compressed_size)
    if len(raw) != member.compressed_size:
        raise CheckpointError(f"{source}: member {name!r} is cut short (the file is truncated)")
    if member.method == 0:
        return raw
    inflate = zlib.decompressobj(-15)
    try:
        out = inflate.decompress(raw, member.size + 1)
    except zlib.error as e:
        raise CheckpointError(f"{source}: member {name!r} is damaged ({e})") from None
    if len(out) != member.size:
        raise CheckpointError(f"{source}: member {name!r} does not expand to the size its directory entry says")
    return out
