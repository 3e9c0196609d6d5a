"""``torch.compile`` of zoo models: no graph breaks in the forward pass, and the compiled model
computes what eager does (its scan is then the "chunked" backend, chosen by "auto")."""

from __future__ import annotations

import json

import pytest
import torch

import zeromamba
from zeromamba.exporter import TOLERANCE

from ..helpers import scaled_error


def _graph_breaks(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, list]:
    torch._dynamo.reset()
    with torch.inference_mode():
        explained = torch._dynamo.explain(model)(x)
    return explained.graph_break_count, explained.break_reasons


def test_shipped_model_forward_has_no_graph_breaks() -> None:
    model = zeromamba.from_pretrained("shapes-zsl").model
    count, reasons = _graph_breaks(model, torch.randn(2, 3, 80, 80))
    assert count == 0, reasons


@pytest.mark.slow
def test_dstate4_and_vim_forwards_have_no_graph_breaks(official_fixtures, vim_fixtures) -> None:
    model = zeromamba.load_official(official_fixtures / "parity_dstate4" / "zeromamba_official_format.pth")
    count, reasons = _graph_breaks(model, torch.randn(2, 3, 40, 56))
    assert count == 0, reasons
    meta = json.loads((vim_fixtures / "vim_ds16" / "meta.json").read_text())["config"]
    size = meta["img_size"]
    vim = zeromamba.load_official(
        vim_fixtures / "vim_ds16" / "vim_official_format.pth",
        img_size=tuple(size) if isinstance(size, list) else size,
        stride=meta["stride"],
    )
    height, width = (size, size) if isinstance(size, int) else size
    count, reasons = _graph_breaks(vim, torch.randn(2, 3, height, width))
    assert count == 0, reasons


@pytest.mark.slow
def test_compiled_shipped_model_matches_eager() -> None:
    # inductor compiles C++ on the CPU: minutes on a small shared machine, so one model, one size
    model = zeromamba.from_pretrained("shapes-zsl").model
    x = torch.randn(2, 3, 80, 80, generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    with torch.inference_mode():
        want = model(x)
        got = torch.compile(model)(x)
    for field in ("attributes", "local_attributes", "global_attributes", "attention"):
        assert scaled_error(getattr(got, field), getattr(want, field)) < TOLERANCE, field
