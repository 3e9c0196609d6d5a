"""Building and loading the C kernels (``ops/csrc``) with the system compiler, on first use.

A library is compiled into the user cache (``$ZEROMAMBA_CACHE_DIR``, else
``$XDG_CACHE_HOME/zeromamba``, else ``~/.cache/zeromamba``) when that folder is this user's alone,
else into a private temporary folder of this process (:mod:`zeromamba.ops.kernel_cache`, which also
checks the folder and file before loading), atomically (written under a temporary name, then
renamed), and keyed by a hash of the source, compiler, flags, machine and, for an OpenMP build, the
OpenMP runtime it links to.

Builds are tried in order, the first that compiles and loads wins:

1. ``openmp``: tuned for this CPU (``-march=native``) and parallel with OpenMP, linked to the
   OpenMP runtime PyTorch itself loaded (found in ``/proc/self/maps``), so the kernel's threads
   are PyTorch's own worker threads rather than a second pool competing with them for the cores;
2. ``native``: tuned for this CPU, single-threaded (the caller splits the work over threads);
3. ``portable``: plain flags, for compilers that reject ``-march=native``.

No ``-ffast-math``: it would let the library switch the whole process to flush-to-zero.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import torch  # noqa: F401  (loads the OpenMP runtime that an OpenMP build links to)

from ..fileio import cache_root
from .kernel_cache import kernel_folders, load_library, trusted_file

__all__ = ["build_library", "openmp_runtime"]

_NATIVE_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp-simd", "-fPIC", "-std=c99")
_PORTABLE_FLAGS = ("-O3", "-fno-math-errno", "-fPIC", "-std=c99")
_OPENMP_NAMES = ("libgomp", "libiomp5", "libomp")


def cache_dir() -> Path:
    """Where built kernels are kept."""
    return cache_root() / "kernels"


def _cpu_signature() -> str:
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line
                    break
    except OSError:
        pass
    return platform.machine() + platform.system() + flags


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def openmp_runtime() -> str | None:
    """The OpenMP runtime library this process has loaded (PyTorch's), or ``None`` (not Linux, or
    PyTorch built without OpenMP)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if line.rstrip().endswith((".so", ".so.1", ".so.5"))}
    except OSError:
        return None
    for path in sorted(paths):
        if os.path.basename(path).startswith(_OPENMP_NAMES) and os.path.isfile(path):
            return path
    return None


def _compile(cc: str, flags: tuple[str, ...], link: tuple[str, ...], source: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, obj, lib = (os.path.join(tmp, n) for n in ("kernel.c", "kernel.o", "lib.so"))
        with open(src, "w") as f:
            f.write(source)
        for cmd in ([cc, *flags, "-c", src, "-o", obj], [cc, "-shared", obj, "-o", lib, *link, "-lm"]):
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if res.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[:500]}")
        os.chmod(lib, 0o700)  # writable by this user alone, or kernel_cache refuses to load it
        os.replace(lib, target)  # atomic: a reader sees no file or a whole one


def _variants(openmp: bool) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """``(name, compile flags, link arguments)`` in the order they are tried."""
    variants = []
    runtime = openmp_runtime() if openmp else None
    if runtime is not None:
        variants.append(("openmp", (*_NATIVE_FLAGS, "-fopenmp"), (runtime,)))
    variants += [("native", _NATIVE_FLAGS, ()), ("portable", _PORTABLE_FLAGS, ())]
    return variants


def build_library(source_name: str, openmp: bool = True) -> tuple[ctypes.CDLL, str]:
    """Compile (once, cached) and load ``ops/csrc/<source_name>``: ``(library, variant name)``.

    ``openmp=False`` skips the OpenMP build (``ZEROMAMBA_CPU_KERNEL_OPENMP=0`` does too).

    Raises:
        RuntimeError: no compiler, or no variant compiled and loaded (the messages of each try).
    """
    source = resources.files("zeromamba.ops").joinpath(f"csrc/{source_name}").read_text()
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set $CC)")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    openmp = openmp and os.environ.get("ZEROMAMBA_CPU_KERNEL_OPENMP", "") not in ("0", "false", "no")
    folders = kernel_folders()  # the user cache when it is this user's alone, then a private folder
    errors = []
    for name, flags, link in _variants(openmp):
        parts = [source, cc, version, *flags, *link, _cpu_signature()]
        key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
        stem = Path(source_name).stem
        for root in folders:
            target = root / f"{stem}_{key}.so"
            try:
                if not trusted_file(target):  # missing, or not this user's alone: (re)built
                    _compile(cc, flags, link, source, target)
                return load_library(target), name
            except Exception as e:  # unwritable cache, compiler error, unloadable library
                errors.append(f"{name}: {e}")
    raise RuntimeError("; ".join(errors))
