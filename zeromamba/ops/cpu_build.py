"""Building and loading the C kernels (``ops/csrc``) with the system compiler, on first use.

A library is compiled into the user cache (``$ZEROMAMBA_CACHE_DIR``, else
``$XDG_CACHE_HOME/zeromamba``, else ``~/.cache/zeromamba``) when that folder is this user's alone,
else into a private temporary folder of this process (:mod:`zeromamba.ops.kernel_cache`, which also
checks the folder and file before loading), atomically (written under a temporary name, then
renamed), and keyed by a hash of the source, compiler, flags, machine and, for an OpenMP build, the
OpenMP runtime it links to.

Which instruction set a library is built for (``isa``, else ``$ZEROMAMBA_CPU_ISA``, else
``native``):

* ``native``: the best code for the CPU it runs on (``-march=native`` on x86, ``-mcpu=native``
  elsewhere); a compiler that rejects it gets the highest x86-64 level this CPU supports, then
  plain flags (the kernels are explicit SIMD, so even those are vectorised: SSE2 on any x86-64,
  NEON on any aarch64);
* a level by name (:func:`isa_levels`): ``x86-64``, ``x86-64-v2`` (SSE4.2), ``x86-64-v3`` (AVX2,
  FMA), ``x86-64-v4`` (AVX-512) or ``armv8-a`` (NEON): exactly that build, or none. A level the
  CPU lacks is refused rather than run into an illegal instruction. An older level runs on any
  newer CPU, which is how one machine measures them all (``benchmarks/scan_kernel.py --isa all``);
* ``portable``: no ``-march`` at all.

For each, the builds are tried in order, the first that compiles and loads wins:

1. ``openmp``: parallel with OpenMP, linked to the OpenMP runtime PyTorch itself loaded (found in
   ``/proc/self/maps``), so the kernel's threads are PyTorch's own worker threads rather than a
   second pool competing with them for the cores;
2. ``native`` (serial): single-threaded, the caller splits the work over threads (named after
   the ``native`` ISA it usually has; :attr:`KernelBuild.isa` says which it has);
3. with ``isa="native"`` only: the best x86-64 level, then ``portable``.

The compiler is ``compiler``, else ``$CC``, else ``cc``, ``gcc`` or ``clang``, whichever is found.
Flags: ``-O3 -fno-math-errno -fno-trapping-math -ffp-contract=off``. No ``-ffast-math``: it would
let the library switch the whole process to flush-to-zero; ``-ffp-contract=off`` keeps each
multiply-add where the source puts one, so GCC and Clang builds agree bit for bit.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch  # noqa: F401  (loads the OpenMP runtime that an OpenMP build links to)

from ..cpu_info import cpu_flags
from ..fileio import cache_root
from .kernel_cache import kernel_folders, load_library, trusted_file

__all__ = [
    "KernelBuild",
    "build_library",
    "compile_flags",
    "compiler_version",
    "cpu_flags",
    "default_compiler",
    "isa_levels",
    "openmp_runtime",
]

_BASE_FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-fPIC", "-std=c99")
_OPENMP_NAMES = ("libgomp", "libiomp5", "libomp")

#: the CPU flags (``/proc/cpuinfo``) each x86-64 level needs beyond the one below it
_X86_LEVELS = {
    "x86-64": (),
    "x86-64-v2": ("cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"),
    "x86-64-v3": ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"),
    "x86-64-v4": ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"),
}


@dataclass(frozen=True)
class KernelBuild:
    """What a loaded kernel library was built as: ``variant`` (``"openmp"``, ``"native"`` or
    ``"portable"``, see the module docstring), ``isa`` (``"native"``, a level name or
    ``"portable"``), the compiler command and its version line, and the library file."""

    variant: str
    isa: str
    compiler: str
    compiler_version: str
    path: str


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


def default_compiler() -> str | None:
    """The C compiler the kernels are built with by default: ``$CC``, else ``cc``, ``gcc`` or ``clang``."""
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def compiler_version(cc: str) -> str:
    """The first line of ``cc --version`` (e.g. ``gcc (Debian 12.2.0-14) 12.2.0``), or ``""``."""
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def _is_arm64() -> bool:
    return platform.machine().lower() in ("aarch64", "arm64")


def isa_levels(supported_only: bool = True) -> list[str]:
    """The instruction-set levels a kernel can be built for on this machine, oldest first
    (``supported_only``: those this CPU runs; where its flags cannot be read, all of them)."""
    if _is_arm64():
        return ["armv8-a"]
    if not _is_x86():
        return []
    flags = cpu_flags() if supported_only else None
    levels, needed = [], set()
    for level, more in _X86_LEVELS.items():
        needed |= set(more)
        if flags is not None and not needed <= flags:
            break
        levels.append(level)
    return levels


def _check_isa(isa: str) -> None:
    """Raise ``ValueError`` for an ``isa`` this machine does not know or its CPU cannot run."""
    if isa in ("native", "portable"):
        return
    known = isa_levels(supported_only=False)
    if isa not in known:
        choices = ", ".join(["native", "portable", *known])
        raise ValueError(f"unknown CPU instruction set {isa!r} for {platform.machine()}: choose one of {choices}")
    if isa not in isa_levels():
        flags = cpu_flags() or set()
        missing = sorted({f for lvl in known[: known.index(isa) + 1] for f in _X86_LEVELS.get(lvl, ())} - flags)
        raise ValueError(f"this CPU cannot run {isa} code (it lacks {', '.join(missing)}); choose an older level")


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


def _compile(
    cc: str, flags: tuple[str, ...], link: tuple[str, ...], source: str, target: Path, headers: dict[str, str]
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, obj, lib = (os.path.join(tmp, n) for n in ("kernel.c", "kernel.o", "lib.so"))
        for name, text in {"kernel.c": source, **headers}.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        for cmd in ([cc, *flags, "-I", tmp, "-c", src, "-o", obj], [cc, "-shared", obj, "-o", lib, *link, "-lm"]):
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if res.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[:500]}")
        os.chmod(lib, 0o700)  # writable by this user alone, or kernel_cache refuses to load it
        os.replace(lib, target)  # atomic: a reader sees no file or a whole one


def _isa_flags(isa: str) -> tuple[str, ...]:
    if isa == "portable":
        return ()
    if isa == "native":
        return ("-march=native",) if _is_x86() else ("-mcpu=native",)
    return (f"-march={isa}",)


def compile_flags(isa: str = "native") -> tuple[str, ...]:
    """The compiler flags of a serial build for ``isa`` (for building the kernels elsewhere, e.g.
    cross-compiled for another architecture: ``compile_flags("armv8-a")``)."""
    return (*_BASE_FLAGS, *_isa_flags(isa))


def _variants(openmp: bool, isa: str) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """``(name, isa, compile flags, link arguments)`` in the order they are tried."""
    flags = (*_BASE_FLAGS, *_isa_flags(isa))
    variants = []
    runtime = openmp_runtime() if openmp else None
    if runtime is not None:
        variants.append(("openmp", isa, (*flags, "-fopenmp"), (runtime,)))
    variants.append(("native", isa, flags, ()))
    if isa == "native":  # a compiler that rejects -march=native / -mcpu=native
        levels = isa_levels() if cpu_flags() is not None else []  # unknown CPU: no level is safe
        if _is_x86() and levels:
            variants.append(("native", levels[-1], (*_BASE_FLAGS, *_isa_flags(levels[-1])), ()))
        variants.append(("portable", "portable", _BASE_FLAGS, ()))
    return variants


def _headers() -> dict[str, str]:
    """The kernels' shared headers (``ops/csrc/*.h``), by file name."""
    folder = resources.files("zeromamba.ops").joinpath("csrc")
    return {p.name: p.read_text() for p in folder.iterdir() if p.name.endswith(".h")}


def build_library(
    source_name: str, openmp: bool = True, isa: str | None = None, compiler: str | None = None
) -> tuple[ctypes.CDLL, KernelBuild]:
    """Compile (once, cached) and load ``ops/csrc/<source_name>``: ``(library, what was built)``.

    ``openmp=False`` skips the OpenMP build (``ZEROMAMBA_CPU_KERNEL_OPENMP=0`` does too). ``isa``
    (default ``$ZEROMAMBA_CPU_ISA``, else ``"native"``) and ``compiler`` (default ``$CC``, else
    the first of ``cc``, ``gcc``, ``clang`` found): see the module docstring.

    Raises:
        ValueError: an ``isa`` this machine does not know, or one its CPU cannot run.
        RuntimeError: no compiler, or no variant compiled and loaded (the messages of each try).
    """
    source = resources.files("zeromamba.ops").joinpath(f"csrc/{source_name}").read_text()
    headers = _headers()
    isa = isa or os.environ.get("ZEROMAMBA_CPU_ISA", "") or "native"
    _check_isa(isa)
    cc = compiler or default_compiler()
    if cc is None or not shutil.which(cc):
        raise RuntimeError(f"no C compiler found ({'no ' + cc if cc else 'set $CC'})")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    openmp = openmp and os.environ.get("ZEROMAMBA_CPU_KERNEL_OPENMP", "") not in ("0", "false", "no")
    folders = kernel_folders()  # the user cache when it is this user's alone, then a private folder
    errors = []
    for name, level, flags, link in _variants(openmp, isa):
        parts = [source, *(t for item in sorted(headers.items()) for t in item), cc, version, *flags, *link]
        key = hashlib.sha256("\0".join([*parts, _cpu_signature()]).encode()).hexdigest()[:16]
        stem = Path(source_name).stem
        for root in folders:
            target = root / f"{stem}_{key}.so"
            try:
                if not trusted_file(target):  # missing, or not this user's alone: (re)built
                    _compile(cc, flags, link, source, target, headers)
                first_line = version.strip().splitlines()[0] if version.strip() else ""
                return load_library(target), KernelBuild(name, level, cc, first_line, str(target))
            except Exception as e:  # unwritable cache, compiler error, unloadable library
                errors.append(f"{name}: {e}")
    raise RuntimeError("; ".join(errors))
