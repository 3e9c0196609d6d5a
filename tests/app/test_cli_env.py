"""``zeromamba env`` as a user runs it: what this machine runs, in a subprocess with no settings of
its own unless the test gives some."""

from __future__ import annotations

import json
import platform

import pytest
import torch

import zeromamba
from zeromamba.ops.cpu_build import cpu_flags


def test_env_reports_this_machine_and_the_kernels_in_use(cli) -> None:
    out = cli("env", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["zeromamba"] == zeromamba.__version__ and report["torch"]["version"] == torch.__version__
    flags = cpu_flags() or set()
    for isa in ("avx2", "avx512f", "asimd"):  # what the CPU has, no more and no less
        assert (isa in report["cpu"]["isa"]) == (isa in flags)
    assert report["cpu"]["machine"] == platform.machine() and report["settings"] == {}
    for name in ("ss2d_scan", "mamba_mixer"):
        kernel = report["kernels"][name]
        assert kernel["status"], kernel
        if kernel["status"] == "ok":  # built for this CPU: as wide as its widest vectors
            widest = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
            assert kernel["isa"] == "native" and kernel["vector_lanes"] == widest, kernel
    int8 = report["int8"]
    assert (int8["kernel"] in ("onednn", "dynamic")) != ("reason" in int8), int8
    assert report["cuda"]["available"] == torch.cuda.is_available()


@pytest.mark.skipif("avx2" not in (cpu_flags() or set()), reason="needs an x86 CPU with AVX2")
def test_env_shows_the_instruction_set_asked_for_and_why_a_path_is_not_used(cli) -> None:
    out = cli("env", ZEROMAMBA_CPU_ISA="x86-64-v3", ZEROMAMBA_INT8_KERNEL="bogus")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split("  ", 1) for line in out.stdout.splitlines())
    lines = {k.strip(): v.strip() for k, v in lines.items()}
    assert lines["VMamba scan kernel"].startswith("in use: x86-64-v3 build, 8 float lanes, FMA"), lines
    assert lines["int8"].startswith("unavailable: ZEROMAMBA_INT8_KERNEL='bogus' is not an int8 kernel"), lines
    assert lines["settings"] == "ZEROMAMBA_CPU_ISA=x86-64-v3 ZEROMAMBA_INT8_KERNEL=bogus"

    off = cli("env", ZEROMAMBA_DISABLE_CPU_KERNEL="1")
    assert off.returncode == 0, off.stderr
    assert "VMamba scan kernel   not used: disabled by ZEROMAMBA_DISABLE_CPU_KERNEL" in off.stdout, off.stdout
    assert "Vim mixer kernels    not used: disabled by ZEROMAMBA_DISABLE_CPU_KERNEL" in off.stdout, off.stdout


def test_env_says_when_the_system_does_not_list_the_instruction_sets() -> None:
    from zeromamba.cli.env import report_text
    from zeromamba.ops.status import runtime_report

    report = runtime_report()
    report["cpu"]["isa"] = None  # as on a system without /proc/cpuinfo
    assert "instruction sets     not listed by this system" in report_text(report)
    report["cpu"]["isa"] = []
    assert "instruction sets     none of those that matter here" in report_text(report)
