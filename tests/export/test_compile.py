"""``torch.compile`` of zoo models: no graph breaks in the forward pass, and the compiled model
computes what eager does. For CPU inference its scan is the fused C kernel as a custom op (one
opaque node that inductor keeps); with gradients, and in ``torch.export`` graphs, the "chunked"
backend."""

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


def _compiled_graph_ops(model: torch.nn.Module, x: torch.Tensor, grad: bool) -> list[str]:
    """The ops of the graph that ``torch.compile`` hands its backend; that graph's output (run as
    it is, without inductor) must be eager's."""
    seen: list[str] = []

    def record(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        seen.extend(str(node.target) for node in gm.graph.nodes if node.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    with torch.set_grad_enabled(grad):
        got = torch.compile(model, backend=record, fullgraph=True)(x)
        want = model(x)
    got, want = (out if isinstance(out, torch.Tensor) else out.attributes for out in (got, want))
    assert scaled_error(got.detach(), want.detach()) < TOLERANCE
    return seen


def _scan_ops_in_compiled_graph(model: torch.nn.Module, x: torch.Tensor, grad: bool) -> tuple[int, int]:
    """(custom scan op nodes, cumsum nodes) in the compiled graph."""
    ops = _compiled_graph_ops(model, x, grad)
    return sum("zeromamba.ss2d_scan_dstate1" in t for t in ops), sum("cumsum" in t for t in ops)


def test_compile_keeps_the_fused_cpu_kernel_for_inference_and_chunked_for_training() -> None:
    model = zeromamba.from_pretrained("shapes-zsl").model
    blocks = sum(1 for m in model.modules() if type(m).__name__ == "SS2D")
    assert blocks > 0
    x = torch.randn(2, 3, 80, 80)
    custom, cumsum = _scan_ops_in_compiled_graph(model, x, grad=False)
    assert (custom, cumsum) == (blocks, 0)
    model.train()
    try:
        custom, cumsum = _scan_ops_in_compiled_graph(model, x, grad=True)
    finally:
        model.eval()
    assert custom == 0 and cumsum > 0  # differentiable plain ops


def test_exported_program_has_no_custom_op() -> None:
    # an ExportedProgram / ONNX file must load where zeromamba is not installed: plain ops only
    from zeromamba.exporter.graph import PredictorGraph

    graph = PredictorGraph(zeromamba.from_pretrained("shapes-zsl").model).eval()
    torch._dynamo.reset()
    with torch.no_grad():
        program = torch.export.export(graph, (torch.randn(2, 3, 80, 80),))
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert not [t for t in targets if "zeromamba" in t]
    assert any("cumsum" in t for t in targets)


def test_custom_scan_op_passes_torch_library_opcheck() -> None:
    from zeromamba.ops.fused_cpu import fused_cpu_available

    if not fused_cpu_available():
        pytest.skip("the fused CPU kernel did not build here (no C compiler)")
    g = torch.Generator().manual_seed(0)
    B, H, W, D, R = 2, 3, 5, 8, 2
    args = (
        torch.randn(B, H * W, D, generator=g),
        torch.randn(B, H * W, 4, R + 2, generator=g),
        torch.randn(4, R, D, generator=g),
        torch.randn(4, D, generator=g),
        -torch.rand(4, D, generator=g),
        torch.randn(D, generator=g),
        H,
        W,
    )
    torch.library.opcheck(torch.ops.zeromamba.ss2d_scan_dstate1.default, args)


def test_compiled_vim_keeps_the_cpu_mixer_kernels(vim_fixtures) -> None:
    meta = json.loads((vim_fixtures / "vim_ds16" / "meta.json").read_text())["config"]
    size = meta["img_size"]
    vim = zeromamba.load_official(
        vim_fixtures / "vim_ds16" / "vim_official_format.pth",
        img_size=tuple(size) if isinstance(size, list) else size,
        stride=meta["stride"],
    ).eval()
    height, width = (size, size) if isinstance(size, int) else size
    layers = sum(1 for m in vim.modules() if type(m).__name__ == "BiMambaMixer")
    assert layers > 0
    ops = _compiled_graph_ops(vim, torch.randn(2, 3, height, width), grad=False)
    # bidirectional Vim: two scans and two convolutions per layer, all the C kernels
    assert sum("zeromamba.mamba_scan_cpu" in t for t in ops) == 2 * layers
    assert sum("zeromamba.causal_conv1d_cpu" in t for t in ops) == 2 * layers
    assert not [t for t in ops if "cumsum" in t]


def test_mixer_custom_ops_pass_torch_library_opcheck() -> None:
    from zeromamba.ops.mixer_cpu import mixer_cpu_available

    if not mixer_cpu_available():
        pytest.skip("the Mamba mixer CPU kernels did not build here (no C compiler)")
    g = torch.Generator().manual_seed(0)
    batch, L, E, N = 2, 7, 8, 3
    x, dt, z = (torch.randn(batch, L, E, generator=g) for _ in range(3))
    A = -torch.rand(E, N, generator=g)
    B, C = (torch.randn(batch, L, N, generator=g) for _ in range(2))
    D, bias = torch.randn(E, generator=g), torch.randn(E, generator=g)
    scan = torch.ops.zeromamba.mamba_scan_cpu.default
    torch.library.opcheck(scan, (x, dt, A, B, C, D, z, bias, True, False))
    torch.library.opcheck(scan, (x, dt, A, B, C, None, None, None, False, True))
    conv = torch.ops.zeromamba.causal_conv1d_cpu.default
    torch.library.opcheck(conv, (x, torch.randn(E, 4, generator=g), D, "silu", False))
    torch.library.opcheck(conv, (x, torch.randn(E, 4, generator=g), None, None, True))
