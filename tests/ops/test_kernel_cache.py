"""Compiled kernels are loaded only from a folder that is this user's alone.

A planted library whose constructor writes a marker file is put, under the exact names the build
would load, into a kernel folder owned by another user, a folder with mode 777, a symbolic link,
the user's own folder (as a file owned by someone else), and the shared ``/tmp`` folder older
versions fell back to. ``build_library`` must never load it (no marker) and still return a working
kernel, built in a private folder of this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from zeromamba.ops import cpu_build, kernel_cache

OTHER_UID = 12345
SOURCE = "mamba_mixer.c"  # the smaller kernel: a quick build
SYMBOL = "mamba_scan_f32"

PLANTED_C = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("%s", "w");
    if (f) { fputs("the planted library ran", f); fclose(f); }
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], Path, Path]]:
    """``(names of the genuine libraries, planted library, its marker)``."""
    root = tmp_path_factory.mktemp("kernels")
    os.environ["ZEROMAMBA_CACHE_DIR"], old = str(root / "genuine"), os.environ.get("ZEROMAMBA_CACHE_DIR")
    try:
        cpu_build.build_library(SOURCE, openmp=False)
    finally:
        if old is None:
            del os.environ["ZEROMAMBA_CACHE_DIR"]
        else:
            os.environ["ZEROMAMBA_CACHE_DIR"] = old
    names = sorted(p.name for p in (root / "genuine" / "kernels").glob("*.so"))
    marker = root / "MARKER"
    src = root / "planted.c"
    src.write_text(PLANTED_C % marker)
    planted = root / "planted.so"
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(planted)], check=True, timeout=120)
    yield names, planted, marker


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh process's state: no private folder yet, nothing said; temporary folders under tmp_path."""
    monkeypatch.setattr(kernel_cache, "_state", {"private": None, "warned": False})
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def _plant(folder: Path, names: list[str], planted: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(planted, folder / name)


def _build_refusing(cache: Path, monkeypatch: pytest.MonkeyPatch, marker: Path, reason: str) -> Path:
    """Build with ``cache``; the planted library must not run, a warning naming ``reason`` is given once, and
    the kernel that is returned works. Returns the folder it was loaded from."""
    monkeypatch.setenv("ZEROMAMBA_CACHE_DIR", str(cache))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        library, _variant = cpu_build.build_library(SOURCE, openmp=False)
        cpu_build.build_library(SOURCE, openmp=False)
    assert not marker.exists(), "the planted library was loaded"
    assert hasattr(library, SYMBOL)  # a genuine kernel
    said = [str(w.message) for w in caught if "not loading compiled kernels" in str(w.message)]
    assert len(said) == 1 and reason in said[0], said
    private = kernel_cache._state["private"]
    assert isinstance(private, Path) and private != cache / "kernels"
    st = private.stat()
    assert st.st_uid == os.geteuid() and st.st_mode & 0o077 == 0  # mkdtemp: this user's alone
    assert list(private.glob("*.so"))
    return private


def test_the_planted_library_would_run_if_loaded(built: tuple[list[str], Path, Path]) -> None:
    """The control: the plant is live, so its absence below means it was not loaded."""
    _names, planted, marker = built
    probe = subprocess.run(
        ["python3", "-c", f"import ctypes; ctypes.CDLL({str(planted)!r})"], capture_output=True, timeout=60
    )
    assert probe.returncode == 0 and marker.exists()
    marker.unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder owned by another user needs root")
def test_folder_owned_by_another_user(built, fresh, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    names, planted, marker = built
    cache = tmp_path / "shared-cache"
    _plant(cache / "kernels", names, planted)
    for p in [cache / "kernels", *(cache / "kernels").iterdir()]:
        os.chown(p, OTHER_UID, OTHER_UID)
    _build_refusing(cache, monkeypatch, marker, f"owned by uid {OTHER_UID}")


def test_folder_writable_by_others(built, fresh, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    names, planted, marker = built
    cache = tmp_path / "open-cache"
    _plant(cache / "kernels", names, planted)
    os.chmod(cache / "kernels", 0o777)
    _build_refusing(cache, monkeypatch, marker, "writable by others (mode 777)")


def test_folder_that_is_a_symbolic_link(built, fresh, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    names, planted, marker = built
    elsewhere = tmp_path / "elsewhere"
    _plant(elsewhere, names, planted)
    os.chmod(elsewhere, 0o700)  # a folder of this user's, but reached through a link
    (tmp_path / "linked-cache").mkdir()
    (tmp_path / "linked-cache" / "kernels").symlink_to(elsewhere)
    _build_refusing(tmp_path / "linked-cache", monkeypatch, marker, "symbolic link")


def test_old_shared_tmp_folder_is_never_used(built, fresh, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The folder older versions fell back to, ``<tmp>/zeromamba-kernels-<uid>``, planted in advance."""
    names, planted, marker = built
    _plant(fresh / f"zeromamba-kernels-{os.getuid()}", names, planted)
    blocker = tmp_path / "a-file"
    blocker.write_text("where the cache folder should be")
    private = _build_refusing(blocker, monkeypatch, marker, "cannot be made or read")
    assert private.name != f"zeromamba-kernels-{os.getuid()}"


def test_planted_file_in_the_users_own_folder_is_rebuilt(built, fresh, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A trusted folder holding a file that is not this user's alone: the file is rebuilt over, not loaded."""
    names, planted, marker = built
    cache = tmp_path / "own-cache"
    _plant(cache / "kernels", names, planted)
    os.chmod(cache / "kernels", 0o700)
    for p in (cache / "kernels").iterdir():
        if os.geteuid() == 0:
            os.chown(p, OTHER_UID, OTHER_UID)
        else:
            os.chmod(p, 0o777)
    monkeypatch.setenv("ZEROMAMBA_CACHE_DIR", str(cache))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the folder itself is fine: nothing to say
        library, _variant = cpu_build.build_library(SOURCE, openmp=False)
    assert not marker.exists()
    assert hasattr(library, SYMBOL)
    rebuilt = [cache / "kernels" / n for n in names if (cache / "kernels" / n).exists()]
    assert any(p.stat().st_uid == os.geteuid() and p.stat().st_mode & 0o022 == 0 for p in rebuilt)


def test_a_new_cache_folder_is_private(fresh, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Created by zeromamba: mode 0700 whatever the umask, so later runs trust it."""
    monkeypatch.setenv("ZEROMAMBA_CACHE_DIR", str(tmp_path / "new-cache"))
    old = os.umask(0o002)  # a group-writable default, as on many desktops
    try:
        folders = kernel_cache.kernel_folders()
    finally:
        os.umask(old)
    assert folders[0] == tmp_path / "new-cache" / "kernels"
    assert (folders[0].stat().st_mode & 0o777) == 0o700
    assert kernel_cache.untrusted_reason(folders[0]) is None


def test_load_library_refuses_what_it_cannot_trust(built, tmp_path) -> None:  # noqa: ANN001
    """The last check, on the opened descriptors: a library file swapped for a link is not followed."""
    _names, planted, marker = built
    folder = tmp_path / "k"
    folder.mkdir(mode=0o700)
    (folder / "lib.so").symlink_to(planted)
    with pytest.raises(kernel_cache.UntrustedLibraryError, match="without following links"):
        kernel_cache.load_library(folder / "lib.so")
    assert not marker.exists()
