"""``benchmarks/gelu_epilogue.py``: both placements of the MLP's GELU timed on ZeroMamba-S's own
products, with what the fused linear layer chooses for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from zeromamba.ops.fused_linear import fused_linear_available

from ..helpers import benchmark_report


@pytest.mark.skipif(not fused_linear_available(), reason="oneDNN fused linear unavailable here")
def test_reports_both_placements_per_product_and_the_choice(tmp_path: Path) -> None:
    args = ["--size", "64", "--rounds", "1", "--repeat", "1", "--builds", "avx2"]
    build = benchmark_report("gelu_epilogue.py", args, tmp_path / "gelu.json")["builds"]["avx2"]
    products = build["products"]
    # ZeroMamba-S has four stages of widths 96..768; at 64 px the first has 16 x 16 tokens
    assert [p["in_features"] for p in products] == [96, 192, 384, 768]
    assert [p["rows"] for p in products] == [256, 64, 16, 4] and sum(p["count"] for p in products) > 4
    # capped at AVX2: the narrowest product keeps the epilogue, the wider ones take the GELU apart
    assert [p["chosen"] for p in products] == ["epilogue", "separate", "separate", "separate"]
    assert all(p["max_abs_difference"] < 1e-4 and p["epilogue_ms"] > 0 for p in products)
    total = build["per_forward_ms"]
    assert total["as_chosen"] == pytest.approx(sum(p[f"{p['chosen']}_ms"] * p["count"] for p in products), abs=0.02)
    assert build["machine"]["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
