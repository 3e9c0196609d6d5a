"""Building a C source shipped in ``zeromamba/ops/csrc`` into a shared library, once per machine.

The library is compiled with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``) into
the user cache (``$ZEROMAMBA_CACHE_DIR``, else ``$XDG_CACHE_HOME/zeromamba``, else
``~/.cache/zeromamba``) under ``kernels/``, keyed by a hash of the source, compiler, flags and CPU,
and renamed into place so a reader never sees half a file. Flags tuned for this CPU are tried
first, then portable ones; an unwritable cache falls back to a folder in the temporary directory.
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

__all__ = ["build_library", "kernel_cache_dir"]

TUNED_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fPIC", "-std=c99")
PORTABLE_FLAGS = ("-O3", "-fno-math-errno", "-fPIC", "-std=c99")


def kernel_cache_dir() -> Path:
    """Where compiled kernels are kept."""
    root = os.environ.get("ZEROMAMBA_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "zeromamba")
    return Path(root) / "kernels"


def _cpu_signature() -> str:
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return platform.machine() + platform.system() + flags


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def _compile(cc: str, flags: tuple[str, ...], source: str, stem: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, obj, lib = (os.path.join(tmp, f"{stem}{ext}") for ext in (".c", ".o", ".so"))
        with open(src, "w") as f:
            f.write(source)
        for cmd in ([cc, *flags, "-c", src, "-o", obj], [cc, "-shared", obj, "-o", lib, "-lm"]):
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if res.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[:500]}")
        os.replace(lib, target)  # atomic: a reader sees no file or a whole one


def build_library(source_name: str) -> ctypes.CDLL:
    """Compile (or find already compiled) ``csrc/<source_name>`` and load it.

    Raises:
        RuntimeError: no compiler, or every flag set and cache folder failed (the message says why).
    """
    source = resources.files("zeromamba.ops").joinpath("csrc", source_name).read_text()
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set $CC)")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    stem = Path(source_name).stem
    fallback = Path(tempfile.gettempdir()) / f"zeromamba-kernels-{getattr(os, 'getuid', lambda: 0)()}"
    errors = []
    for flags in (TUNED_FLAGS, PORTABLE_FLAGS):
        key = hashlib.sha256("\0".join([source, cc, version, *flags, _cpu_signature()]).encode()).hexdigest()[:16]
        for root in (kernel_cache_dir(), fallback):
            target = root / f"{stem}_{key}.so"
            try:
                if not target.exists():
                    _compile(cc, flags, source, stem, target)
                return ctypes.CDLL(str(target))
            except Exception as e:  # unwritable cache, compiler error, unloadable library
                errors.append(str(e))
    raise RuntimeError("; ".join(errors))
