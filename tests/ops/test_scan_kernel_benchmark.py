"""``benchmarks/scan_kernel.py --against REV``: the kernels of another git revision are built from that
revision's sources and timed beside the working tree's, and the report says which commit they came
from and how they compare."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zeromamba.ops.cpu_build import isa_levels

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "scan_kernel.py"
#: the cheapest run: one build (SSE2, gcc), one round
ONE_SSE_BUILD = [sys.executable, str(SCRIPT), "--isa", "x86-64", "--compilers", "gcc", "--rounds", "1"]

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists() or shutil.which("gcc") is None or not isa_levels(),
    reason="needs a git checkout, gcc and an x86-64 CPU",
)


def _head() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def test_against_times_the_kernels_of_a_revision_beside_the_current_ones(tmp_path: Path) -> None:
    out = tmp_path / "against.json"
    cmd = [*ONE_SSE_BUILD, "--against", "HEAD", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    (build,) = report["builds"]
    against = build["against"]
    assert against["revision"] == "HEAD" and against["commit"] == _head()
    # the revision's kernel computes the same scan: its error against the torch backend is as small
    assert against["max_relative_error_vs_torch"] < 1e-5
    assert len(against["stages_speedup"]) == len(build["stages"]) == 4
    assert all(s > 0 for s in against["stages_speedup"]) and against["network_speedup"] > 0
    assert against["network_scan_ms"] > 0 and against["mixer_speedup"] > 0
    assert "speed-up over HEAD" in run.stderr


def test_against_a_revision_that_does_not_exist_fails_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "against.json"
    cmd = [*ONE_SSE_BUILD, "--against", "no-such-revision", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 2 and "not a revision of this git checkout" in run.stderr and not out.exists()


def test_against_needs_one_thread() -> None:
    cmd = [sys.executable, str(SCRIPT), "--threads", "2", "--against", "HEAD"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 2 and "--against compares serial builds" in run.stderr
