"""Writing files so that a reader never sees half of one.

Every write goes to a temporary name in the target folder, is flushed to disk, and is renamed
into place (an atomic step on POSIX and Windows); the temporary file is removed if anything fails.

A process killed outright (``SIGKILL``, a power cut) cannot remove its temporary file, so the name
says whose it is: ``.<target name>.zeromamba-<pid>-<random>.tmp``. Each write first removes the
temporary files in its folder whose process no longer runs on this machine and that nobody has
written to for :data:`STALE_TEMPORARY_SECONDS` (a live writer keeps its file's time fresh); see
:func:`remove_stale_temporaries`. A read-only target is not replaced unless the caller says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ReadOnlyTargetError

__all__ = [
    "MAX_TEXT_FILE_BYTES",
    "STALE_TEMPORARY_SECONDS",
    "atomic_write",
    "cache_root",
    "fsync_dir",
    "open_regular",
    "read_regular_bytes",
    "read_regular_text",
    "refuse_read_only",
    "remove_stale_temporaries",
    "replace_dir",
    "write_bytes",
    "write_json",
    "write_text",
]

#: the largest config.json, CSV or names list zeromamba reads (a 100k-class x 1k-attribute CSV is ~600 MB)
MAX_TEXT_FILE_BYTES = 1 << 30


def cache_root() -> Path:
    """zeromamba's own user cache (built kernels, converted release files): ``$ZEROMAMBA_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/zeromamba``, else ``~/.cache/zeromamba``. Hub downloads use the Hub's cache."""
    root = os.environ.get("ZEROMAMBA_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "zeromamba")
    return Path(root)


def open_regular(path: str | os.PathLike, error: type[Exception], what: str = "file") -> tuple[int, os.stat_result]:
    """An open read-only descriptor of ``path`` and its ``fstat``, when it is a regular file (after symlinks).

    Opening does not block (``O_NONBLOCK``: a FIFO with no writer) and the type is checked on the opened
    descriptor, so a file swapped in between cannot slip past. A FIFO, socket, device or folder raises
    ``error`` (the descriptor closed); ``FileNotFoundError`` is raised as is. The caller closes the descriptor.
    """
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise error(f"{what} {path!r} is a folder, not a file") from None
    except OSError as e:
        raise error(f"cannot open {what} {path!r}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise error(
            f"{what} {path!r} is {_file_kind(st.st_mode)}, not a regular file: zeromamba reads only regular files"
        )
    return fd, st


def read_regular_bytes(path: str | os.PathLike, max_bytes: int, error: type[Exception], what: str = "file") -> bytes:
    """The bytes of ``path``, read only when it is a regular file (:func:`open_regular`) of at most ``max_bytes``.

    A FIFO, socket or device (``/dev/zero``, ``/dev/urandom``) or an oversized file raises ``error`` at
    once, before anything is read. ``FileNotFoundError`` is raised as is.
    """
    path = os.fspath(path)
    fd, st = open_regular(path, error, what)
    try:
        if st.st_size > max_bytes:
            raise error(
                f"{what} {path!r} is {st.st_size:,} bytes, more than the {max_bytes:,} bytes zeromamba reads "
                "for it: is it the right file?"
            )
        chunks, total = [], 0
        while True:  # read at most max_bytes + 1, so a file that grows while read is caught too
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise error(f"{what} {path!r} grew past {max_bytes:,} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def read_regular_text(
    path: str | os.PathLike, max_bytes: int, error: type[Exception], what: str = "file", encoding: str = "utf-8"
) -> str:
    """:func:`read_regular_bytes` decoded (``utf-8-sig`` drops a byte-order mark); a decoding error is ``error``."""
    data = read_regular_bytes(path, max_bytes, error, what)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise error(f"{what} {os.fspath(path)!r} is not {encoding} text: {e}") from None


#: a temporary file of a process that no longer runs is removed once it is this many seconds old
STALE_TEMPORARY_SECONDS = 60.0

_TEMPORARY_TAG = "zeromamba"
# ours: ".<name>.zeromamba-<pid>-<hex>.tmp"; older versions wrote ".<name>.<pid>.<8 hex>.tmp"
_TEMPORARY_NAME = re.compile(rf"^\..+\.(?:{_TEMPORARY_TAG}-(\d+)-[0-9a-f]{{8}}|(\d+)\.[0-9a-f]{{8}})\.tmp$")


def _temporary_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{_TEMPORARY_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # it exists (another user's), or we cannot tell: keep its file
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, min_age: float = STALE_TEMPORARY_SECONDS) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write` in ``folder`` left by processes that died.

    A file is removed when its name carries the id of a process that no longer runs here and it was
    last written more than ``min_age`` seconds ago. Anything else (another program's files, a live
    writer's) is left alone; errors (a file removed meanwhile, no permission) are ignored.

    Returns:
        the files removed.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY_NAME.match(entry.name) if entry.name.startswith(".") else None
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime < min_age:
                continue
            if _process_runs(int(match.group(1) or match.group(2))):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _read_only(st: os.stat_result, path: Path) -> bool:
    # the mode bits as well as access(): root may write anywhere, but a file marked read-only says "keep me"
    return not (st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) or not os.access(path, os.W_OK)


def refuse_read_only(path: str | os.PathLike) -> None:
    """Raise :class:`ReadOnlyTargetError` now when ``path`` is a read-only file that :func:`atomic_write`
    would refuse to replace: for a long job, before the work rather than after it."""
    path = Path(path)
    try:
        existing = os.stat(path)
    except OSError:
        return
    if stat.S_ISREG(existing.st_mode) and _read_only(existing, path):
        raise ReadOnlyTargetError(_read_only_message(path, existing))


def _read_only_message(path: Path, existing: os.stat_result) -> str:
    return (
        f"{path} is read-only (mode {stat.filemode(existing.st_mode)}): zeromamba does not replace a read-only "
        "file; make it writable (chmod u+w), remove it, or write to another path"
    )


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], *, replace_read_only: bool = False) -> Path:
    """Call ``write(tmp_path)``, fsync the result and rename it onto ``path`` (folders are created).

    The stale temporary files of dead writers in the folder are removed first
    (:func:`remove_stale_temporaries`). A file that ``path`` replaces keeps its permission bits.

    Raises:
        ReadOnlyTargetError: ``path`` is a read-only file (no write permission bit, or not writable by
            this user) and ``replace_read_only`` is false; nothing is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    try:
        existing: os.stat_result | None = os.stat(path)
    except OSError:
        existing = None
    if existing is not None and stat.S_ISREG(existing.st_mode) and not replace_read_only and _read_only(existing, path):
        raise ReadOnlyTargetError(_read_only_message(path, existing))
    tmp = _temporary_name(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if existing is not None and stat.S_ISREG(existing.st_mode):
            os.chmod(tmp, stat.S_IMODE(existing.st_mode))  # replacing a file does not change who may read it
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_bytes(path: str | os.PathLike, data: bytes, *, replace_read_only: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), replace_read_only=replace_read_only)


def write_text(path: str | os.PathLike, text: str, *, replace_read_only: bool = False) -> Path:
    """Write UTF-8 text to ``path`` atomically (see :func:`atomic_write`)."""
    return write_bytes(path, text.encode("utf-8"), replace_read_only=replace_read_only)


def write_json(obj: Any, path: str | os.PathLike, indent: int | None = 2, *, replace_read_only: bool = False) -> Path:
    """Write ``obj`` as JSON (UTF-8, a trailing newline) to ``path`` atomically (see :func:`atomic_write`)."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"
    return write_text(path, text, replace_read_only=replace_read_only)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename inside it) to disk where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move a completely written folder ``tmp`` onto ``final`` (replacing an older one)."""
    tmp, final = Path(tmp), Path(final)
    for f in tmp.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final
