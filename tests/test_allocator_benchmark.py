"""``benchmarks/allocator.py``: each allocator in processes of its own, against glibc's default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import benchmark_report

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "allocator.py"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's variables: Linux only")


def test_reports_each_allocator_against_glibc_per_model_and_batch(tmp_path: Path) -> None:
    args = ["--allocators", "glibc", "glibc-retain", "--models", "resnet101"]
    args += ["--size", "32", "--batches", "1", "2", "--runs", "2", "--rounds", "1", "--threads", "1"]
    report = benchmark_report("allocator.py", args, tmp_path / "allocator.json")
    assert report["benchmark"] == "allocator" and report["rounds"] == 1 and report["not_installed"] == []
    assert report["machine"]["cpu_model"]
    glibc, retain = report["allocators"]["glibc"], report["allocators"]["glibc-retain"]
    assert glibc["environment"] == {}
    assert retain["environment"] == {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**30)}
    for entry in (glibc, retain):
        model = entry["models"]["resnet101"]
        assert set(model["batches"]) == {"b1", "b2"} and model["peak_rss_mib"] > 50
        for row in model["batches"].values():
            assert 0 < row["best_ms"] <= row["median_ms"] and row["faults_per_pass"] >= 0
    # the baseline is not compared with itself; the other allocator has a ratio per batch, its range bracketing it
    assert all("speedup_over_glibc" not in row for row in glibc["models"]["resnet101"]["batches"].values())
    for row in retain["models"]["resnet101"]["batches"].values():
        low, high = row["speedup_over_glibc_range"]
        assert 0 < low <= row["speedup_over_glibc"] <= high


def test_the_baseline_cannot_be_left_out(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--allocators", "tcmalloc"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2 and "must include glibc" in run.stderr
