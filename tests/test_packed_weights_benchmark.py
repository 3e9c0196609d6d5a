"""``benchmarks/packed_weights.py``: packed against plain weights, alternating in one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zeromamba.ops.fused_linear import fused_linear_available

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "packed_weights.py"


@pytest.mark.skipif(not fused_linear_available(), reason="oneDNN fused linear unavailable here")
def test_reports_both_settings_their_ratio_and_the_memory_packing_adds(tmp_path: Path) -> None:
    out = tmp_path / "packed.json"
    cmd = [sys.executable, str(SCRIPT), "--size", "32", "--pairs", "2", "--threads", "1", "--builds", "native"]
    run = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
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
