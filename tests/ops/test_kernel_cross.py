"""The CPU kernels cross-compiled for aarch64 (NEON) and run under qemu-user, against the PyTorch path.

Runs where Debian's ``gcc-aarch64-linux-gnu`` (with ``libc6-dev-arm64-cross``) and ``qemu-user``
are installed, and says it is skipped elsewhere. The kernels and a small command-line driver
(``kernel_driver.c``) are built with the package's own flags for ``armv8-a``; their outputs must
match the ``torch`` backend, and match bit for bit the same driver built for this machine at
x86-64-v3: both have fused multiply-add, and each channel's arithmetic is the same sequence of
IEEE operations at any vector width.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from zeromamba.ops.cpu_build import compile_flags, isa_levels
from zeromamba.ops.mixer_torch import causal_conv1d_torch, selective_scan_torch
from zeromamba.ops.torch_scan import cross_scan_torch

CROSS_CC, QEMU = "aarch64-linux-gnu-gcc", "qemu-aarch64"
CSRC = Path(__file__).parents[2] / "zeromamba" / "ops" / "csrc"
DRIVER = Path(__file__).with_name("kernel_driver.c")
SOURCES = [DRIVER, CSRC / "ss2d_scan.c", CSRC / "mamba_mixer.c"]

pytestmark = pytest.mark.skipif(
    not (shutil.which(CROSS_CC) and shutil.which(QEMU)),
    reason=f"needs {CROSS_CC} and {QEMU} (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)",
)


def _build(cc: str, isa: str, target: Path, static: bool) -> Path:
    cmd = [cc, *compile_flags(isa), *(["-static"] if static else []), "-I", str(CSRC), *map(str, SOURCES)]
    res = subprocess.run([*cmd, "-o", str(target), "-lm"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return target


@pytest.fixture(scope="module")
def drivers(tmp_path_factory) -> dict[str, list[str]]:
    """The command prefix that runs the driver: aarch64 under qemu, and this machine's x86-64-v3 build."""
    folder = tmp_path_factory.mktemp("cross")
    out = {"aarch64": [QEMU, str(_build(CROSS_CC, "armv8-a", folder / "driver_arm64", static=True))]}
    if platform.machine().lower() in ("x86_64", "amd64") and "x86-64-v3" in isa_levels() and shutil.which("gcc"):
        out["x86-64-v3"] = [str(_build("gcc", "x86-64-v3", folder / "driver_v3", static=False))]
    return out


def _run(command: list[str], kernel: str, sizes: list[int], arrays: list[torch.Tensor], n_out: int, tmp: Path):
    src, dst = tmp / f"{kernel}.in", tmp / f"{kernel}.out"
    with open(src, "wb") as f:
        np.asarray(sizes, dtype="<i8").tofile(f)
        for a in arrays:
            a.detach().float().contiguous().numpy().astype("<f4").tofile(f)
    res = subprocess.run([*command, kernel, str(src), str(dst)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    flat = torch.from_numpy(np.fromfile(dst, dtype="<f4"))
    return flat.chunk(n_out)


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


def test_ss2d_scan_on_aarch64_matches_torch(drivers, tmp_path):
    g = torch.Generator().manual_seed(0)
    B, H, W, D, R = 2, 7, 9, 40, 3  # odd sizes, a partial channel tile (NEON tiles are 16 wide)
    x = torch.randn(B, H, W, D, generator=g)
    x_proj = torch.randn(4, R + 2, D, generator=g) * 0.3
    dt_w, dt_b = torch.randn(4, D, R, generator=g) * 0.5, torch.randn(4, D, generator=g) * 0.5 - 1
    A_logs, Ds = torch.randn(4 * D, 1, generator=g) * 0.5, torch.randn(4 * D, generator=g)
    xdbl = torch.einsum("bhwd,krd->bhwkr", x, x_proj)
    arrays = [x, xdbl, dt_w.transpose(1, 2), dt_b, -torch.exp(A_logs).view(4, D), Ds.view(4, D).sum(0)]
    outs = {name: _run(cmd, "scan", [B, H, W, D, R], arrays, 2, tmp_path) for name, cmd in drivers.items()}
    want = cross_scan_torch(x, x_proj, dt_w, dt_b, A_logs, Ds).reshape(-1)
    y, y_bf16 = outs["aarch64"]
    assert _relative(y, want) < 1e-5
    want_bf16 = cross_scan_torch(x.bfloat16().float(), x_proj, dt_w, dt_b, A_logs, Ds).reshape(-1)
    assert _relative(y_bf16, want_bf16) < 1e-2  # dt rounded to bfloat16 as a bfloat16 model's is
    if "x86-64-v3" in outs:
        assert all(torch.equal(a, b) for a, b in zip(outs["aarch64"], outs["x86-64-v3"]))


@pytest.mark.parametrize("reverse", [0, 1])
def test_mixer_on_aarch64_matches_torch(drivers, tmp_path, reverse):
    g = torch.Generator().manual_seed(1)
    batch, L, E, N, K = 2, 23, 37, 5, 4
    x, z = torch.randn(batch, L, E, generator=g), torch.randn(batch, L, E, generator=g)
    dt, dt_bias = torch.randn(batch, L, E, generator=g) * 0.5, torch.randn(E, generator=g)
    A = -torch.rand(E, N, generator=g) * 2
    Bm, Cm = torch.randn(batch, L, N, generator=g), torch.randn(batch, L, N, generator=g)
    D, w, conv_bias = torch.randn(E, generator=g), torch.randn(E, 1, K, generator=g) * 0.5, torch.randn(E, generator=g)
    arrays = [x, dt, dt_bias, Bm, Cm, A.t(), D, z, w.reshape(E, K).t(), conv_bias]
    sizes = [batch, L, E, N, K, reverse]
    outs = {name: _run(cmd, "mixer", sizes, arrays, 2, tmp_path) for name, cmd in drivers.items()}
    y_scan, y_conv = outs["aarch64"]
    want = selective_scan_torch(x, dt, A, Bm, Cm, D, z, dt_bias, reverse=bool(reverse))
    assert _relative(y_scan, want.reshape(-1)) < 1e-5
    assert _relative(y_conv, causal_conv1d_torch(x, w, conv_bias, "silu", bool(reverse)).reshape(-1)) < 1e-5
    if "x86-64-v3" in outs:
        assert all(torch.equal(a, b) for a, b in zip(outs["aarch64"], outs["x86-64-v3"]))
