"""``benchmarks/packed_weights.py``: packed against plain weights, alternating in one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from zeromamba.ops.fused_linear import fused_linear_available

from .helpers import benchmark_report


@pytest.mark.skipif(not fused_linear_available(), reason="oneDNN fused linear unavailable here")
def test_reports_both_settings_their_ratio_and_the_memory_packing_adds(tmp_path: Path) -> None:
    args = ["--size", "32", "--pairs", "2", "--threads", "1", "--builds", "native"]
    report = benchmark_report("packed_weights.py", args, tmp_path / "packed.json")
    assert report["benchmark"] == "packed_weights" and report["builds_run"] == ["native"]
    native = report["builds"]["native"]
    assert native["environment"] == {} and native["machine"]["cpu_model"]
    # every linear layer of ZeroMamba-S packed (the x_proj views stay plain), the values kept
    assert native["packed_copies"] > 50
    assert native["max_abs_difference"] < 1e-4
    assert native["rss_added_by_packing_mib"] > 50  # ~the size of the linear weights, 165 MB
    low, high = native["packed_over_plain_range"]
    assert 0 < low <= native["packed_over_plain"] <= high
    assert native["plain_ms_median"] > 0 and native["packed_ms_median"] > 0
