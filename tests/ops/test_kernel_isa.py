"""Every instruction-set build of the CPU kernels (x86-64 to x86-64-v4, GCC and Clang) against the
authors' outputs, how builds agree with each other, and how a build is chosen or refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import zeromamba
from zeromamba.models import calibrated_stacking, class_scores
from zeromamba.ops import cpu_build, fused_cpu, mixer_cpu
from zeromamba.ops.fused_cpu import cross_scan_fused_cpu, kernel_info, select_kernel
from zeromamba.ops.mixer_cpu import mixer_cpu_info, select_mixer_kernels, selective_scan_cpu
from zeromamba.ops.mixer_torch import selective_scan_torch
from zeromamba.ops.self_check import _problem as scan_problem
from zeromamba.ops.self_check import speed_check
from zeromamba.ops.torch_scan import cross_scan_torch

from ..helpers import fixtures_root, scaled_error

COMPILERS = [cc for cc in ("gcc", "clang") if shutil.which(cc)]
LEVELS = cpu_build.isa_levels()
BUILDS = [(cc, isa) for cc in COMPILERS for isa in LEVELS]
#: floats per SIMD register each level builds to (x86-64 and x86-64-v2: SSE, 4)
LANES = {"x86-64": 4, "x86-64-v2": 4, "x86-64-v3": 8, "x86-64-v4": 16, "armv8-a": 4}


@pytest.fixture(scope="module", autouse=True)
def default_kernels_afterwards():
    yield
    select_kernel()
    select_mixer_kernels()


@pytest.fixture(scope="module")
def official():
    """The fixture models on the fused CPU kernels, loaded once: (name, model, expected, meta)."""
    models = []
    root = fixtures_root() / "parity_dstate1"
    meta = json.loads((root / "meta.json").read_text())
    model = zeromamba.load_official(root / "zeromamba_official_format.pth", scan_backend="fused_cpu")
    models.append(("zeromamba", model, load_file(root / "expected.safetensors"), meta))
    for name in ("vim_ds16", "vim_stride8"):
        root = fixtures_root("vim") / name
        meta = json.loads((root / "meta.json").read_text())
        size = meta["config"]["img_size"]
        model = zeromamba.load_official(
            root / "vim_official_format.pth",
            img_size=tuple(size) if isinstance(size, list) else size,
            stride=meta["config"]["stride"],
            scan_backend="fused_cpu",
        )
        models.append((name, model, load_file(root / "expected.safetensors"), meta))
    return models


def _check_official(official) -> None:
    for name, model, expected, meta in official:
        with torch.inference_mode():
            out = model(expected["input0"])
        if name != "zeromamba":
            assert scaled_error(out, expected["input0.logits"]) < 1e-4, name
            continue
        for field, key in (("features", "features"), ("attributes", "fused_attr"), ("logits", "logits")):
            assert scaled_error(getattr(out, field), expected[f"input0.{key}"]) < 1e-4, field
        seen = torch.zeros(expected["class_attributes"].shape[0], dtype=torch.bool)
        seen[meta["seen_classes"]] = True
        scores = class_scores(out.attributes, expected["class_attributes"])
        gzsl = calibrated_stacking(scores, seen, meta["gamma"]).argmax(1)
        assert torch.equal(gzsl, expected["input0.gzsl_pred"])


@pytest.mark.parametrize(("compiler", "isa"), BUILDS)
def test_every_build_matches_the_official_outputs(official, compiler, isa):
    assert select_kernel(isa, compiler) == "ok"
    assert select_mixer_kernels(isa, compiler) == "ok"
    for info in (kernel_info(), mixer_cpu_info()):
        assert info["isa"] == isa and info["compiler"] == compiler
        assert info["vector_lanes"] == LANES.get(isa, 4)
    _check_official(official)


def _outputs() -> list[torch.Tensor]:
    scan = scan_problem(torch.device("cpu"), (2, 9, 7, 72, 3))  # (B, H, W, D, R) of the kernels' self-check
    g = torch.Generator().manual_seed(0)
    x, dt, z = (torch.randn(2, 31, 50, generator=g) for _ in range(3))
    A = -torch.rand(50, 7, generator=g) * 2
    B, C, D = torch.randn(2, 31, 7, generator=g), torch.randn(2, 31, 7, generator=g), torch.randn(50, generator=g)
    with torch.inference_mode():
        return [cross_scan_fused_cpu(*scan), selective_scan_cpu(x, dt, A, B, C, D, z)]


@pytest.mark.skipif(len(COMPILERS) < 2 or "x86-64-v3" not in LEVELS, reason="needs gcc, clang and an AVX2 CPU")
def test_builds_with_fused_multiply_add_agree_bit_for_bit():
    # -ffp-contract=off and explicit SIMD: each channel's arithmetic is the same IEEE operations
    # whatever the compiler or vector width, wherever the multiply-adds are fused
    fma_levels = [isa for isa in LEVELS if LANES[isa] >= 8]
    outputs = {}
    for cc in COMPILERS:
        for isa in fma_levels:
            select_kernel(isa, cc)
            select_mixer_kernels(isa, cc)
            outputs[(cc, isa)] = _outputs()
    first = next(iter(outputs.values()))
    for key, outs in outputs.items():
        assert all(torch.equal(a, b) for a, b in zip(outs, first)), key


def test_an_unknown_or_unsupported_level_is_refused(monkeypatch):
    status = select_kernel("x86-64-v9")
    assert "unknown CPU instruction set 'x86-64-v9'" in status and "choose one of native" in status
    assert not fused_cpu.fused_cpu_available()
    if LEVELS and LEVELS[0] == "x86-64":
        # a CPU with AVX2 but no AVX-512 (the flags are the machine's own, less AVX-512's)
        flags = {f for f in cpu_build.cpu_flags() or () if not f.startswith("avx512")}
        monkeypatch.setattr(cpu_build, "cpu_flags", lambda: flags)
        if "avx2" in flags and "fma" in flags:
            assert cpu_build.isa_levels()[-1] == "x86-64-v3"
        status = select_mixer_kernels("x86-64-v4")
        assert "cannot run x86-64-v4 code" in status and "avx512f" in status
        assert not mixer_cpu.mixer_cpu_available()


def test_the_environment_variable_picks_the_build():
    level = LEVELS[-2] if len(LEVELS) > 1 else "portable"
    probe = (
        "from zeromamba.ops.fused_cpu import kernel_info; from zeromamba.ops.mixer_cpu import mixer_cpu_info; "
        "print(kernel_info()['isa'], mixer_cpu_info()['isa'], kernel_info()['vector_lanes'])"
    )
    env = dict(os.environ, ZEROMAMBA_CPU_ISA=level, CC=COMPILERS[0] if COMPILERS else "cc")  # builds cached above
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == [level, level, str(LANES.get(level, 4))]


def _problem() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(1, 12, 12, 96, generator=g)] + [
        t * 0.3
        for t in (
            torch.randn(4, 6, 96, generator=g),
            torch.randn(4, 96, 4, generator=g),
            torch.randn(4, 96, generator=g),
            torch.randn(4 * 96, 1, generator=g),
            torch.randn(4 * 96, generator=g),
        )
    ]


def test_a_build_slower_than_the_torch_path_is_reported_with_both_timings():
    problem = _problem()

    def twice(*args):  # a "kernel" doing the torch path's work twice
        return cross_scan_torch(*args), cross_scan_torch(*args)

    verdict = speed_check("a slow build", twice, cross_scan_torch, problem)
    assert verdict is not None and verdict.startswith("a slow build is slower than the torch backend")
    slow, fast = (float(v.split()[0]) for v in verdict.split(": ")[1].split(" against "))
    assert slow > fast > 0
    # the real kernels on the problems their own speed checks use (the tiny one above leaves them
    # too small a margin to hold on a loaded machine)
    select_kernel()
    assert speed_check("the fused kernel", cross_scan_fused_cpu, cross_scan_torch, fused_cpu._speed_problem()) is None
    select_mixer_kernels()
    assert speed_check("the mixer kernel", selective_scan_cpu, selective_scan_torch, mixer_cpu._speed_problem()) is None
