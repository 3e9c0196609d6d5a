"""Writing files so that a reader never sees half of one.

Every write goes to a temporary name in the target folder, is flushed to disk, and is renamed
into place (an atomic step on POSIX and Windows); the temporary file is removed if anything fails.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "cache_root", "fsync_dir", "replace_dir", "write_bytes", "write_json", "write_text"]


def cache_root() -> Path:
    """zeromamba's own user cache (built kernels, converted release files): ``$ZEROMAMBA_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/zeromamba``, else ``~/.cache/zeromamba``. Hub downloads use the Hub's cache."""
    root = os.environ.get("ZEROMAMBA_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "zeromamba")
    return Path(root)


def _temporary_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)``, fsync the result and rename it onto ``path`` (folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(obj: Any, path: str | os.PathLike, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8, a trailing newline) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


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
