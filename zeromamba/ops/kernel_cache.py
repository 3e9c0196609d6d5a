"""Where compiled kernel libraries may be loaded from.

Loading a shared library runs code (its constructors), so a library is loaded only from a folder
that no one but this user can write to: the folder and the file must be owned by the current user
and not writable by group or others, checked on descriptors opened without following symbolic
links (``O_NOFOLLOW``), and the library is then loaded through that very descriptor
(``/proc/self/fd/N``), so nothing can be swapped in between the check and the load.

The user cache's ``kernels`` folder (see :func:`zeromamba.fileio.cache_root`) is used when it passes
(it is created with mode 0700). When it does not (another owner, mode 777, a symbolic link, a file),
the kernels are built in a fresh private folder made by ``tempfile.mkdtemp`` (mode 0700, a random
name) for this process only, removed at exit, and a warning says so once. A shared, predictable
folder such as ``/tmp/zeromamba-kernels-<uid>`` is never used.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import stat
import sys
import tempfile
import warnings
from pathlib import Path

from ..fileio import cache_root

__all__ = ["UntrustedLibraryError", "kernel_folders", "load_library", "trusted_file", "untrusted_reason"]

_CHECKS = hasattr(os, "getuid") and hasattr(os, "O_NOFOLLOW")  # POSIX; elsewhere the cache is used as it is
_state: dict[str, object] = {"private": None, "warned": False}
_held: list[int] = []  # descriptors of loaded libraries: kept open so that no /proc/self/fd name is reused


class UntrustedLibraryError(OSError):
    """A kernel library (or its folder) that someone else could have written: it is not loaded."""


def _reason(st: os.stat_result, what: str) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return f"the {what} is a symbolic link"
    if st.st_uid != os.geteuid():
        return f"the {what} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "others" if st.st_mode & stat.S_IWOTH else "its group"
        return f"the {what} is writable by {who} (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def untrusted_reason(folder: Path) -> str | None:
    """Why libraries in ``folder`` may not be loaded (``lstat``: a link is not followed), or ``None``."""
    if not _CHECKS:
        return None
    try:
        st = os.lstat(folder)
    except OSError as e:
        return f"it cannot be made or read ({e.strerror or e})"
    if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        return "it is not a folder"
    return _reason(st, "folder")


def trusted_file(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a link) owned by this user and writable only by them."""
    if not _CHECKS:
        return path.is_file()
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and _reason(st, "file") is None


def _private_folder() -> Path:
    folder = _state["private"]
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="zeromamba-kernels-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _state["private"] = folder
    return folder  # type: ignore[return-value]


def _user_folder() -> tuple[Path, str | None]:
    folder = cache_root() / "kernels"
    if _CHECKS and not os.path.lexists(folder):
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return folder, None  # unwritable: the build fails there and moves on to the private folder
    return folder, untrusted_reason(folder)


def kernel_folders() -> list[Path]:
    """The folders to build and load kernels in, in order: the user cache when it is safe, then this
    process's private folder (alone when the cache is not safe, said once)."""
    folder, reason = _user_folder()
    if reason is None:
        return [folder, _private_folder()]
    private = _private_folder()
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(
            f"zeromamba: not loading compiled kernels from {folder}: {reason}. They are built in a private "
            f"temporary folder for this process instead ({private}); to keep them between runs, make the cache "
            "folder yours and not writable by others (chown, chmod 700), or set ZEROMAMBA_CACHE_DIR.",
            RuntimeWarning,
            stacklevel=3,
        )
    return [private]


def load_library(path: Path) -> ctypes.CDLL:
    """Load ``path`` after checking the folder and the file on descriptors opened without following
    links; the library is loaded through the checked descriptor itself (on Linux).

    Raises:
        UntrustedLibraryError: the folder or the file fails the checks.
        OSError: the library cannot be loaded.
    """
    if not _CHECKS:
        return ctypes.CDLL(str(path))
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        folder = os.open(path.parent, flags | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise UntrustedLibraryError(f"{path.parent}: cannot open it without following links ({e.strerror})") from None
    try:
        reason = _reason(os.fstat(folder), "folder")
        if reason:
            raise UntrustedLibraryError(f"{path}: {reason}")
        try:
            fd = os.open(path.name, flags, dir_fd=folder)
        except OSError as e:
            raise UntrustedLibraryError(f"{path}: cannot open it without following links ({e.strerror})") from None
    finally:
        os.close(folder)
    try:
        st = os.fstat(fd)
        reason = "it is not a regular file" if not stat.S_ISREG(st.st_mode) else _reason(st, "file")
        if reason:
            raise UntrustedLibraryError(f"{path}: {reason}")
        proc = f"/proc/self/fd/{fd}"
        library = ctypes.CDLL(proc if sys.platform.startswith("linux") and os.path.exists(proc) else str(path))
    except BaseException:
        os.close(fd)
        raise
    _held.append(fd)
    return library
