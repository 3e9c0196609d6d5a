"""The timm model interface of our architectures where timm 1.0.31's own suite found defects:
factory device / dtype, reset_classifier after a dtype change, Vim's fixed input size,
VMamba's pruning, torch.fx tracing, the Vim release resolver after ``import zeromamba``, and
``features_only`` on ZeroMamba. The whole suite runs in ``test_timm_suite.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

import zeromamba  # noqa: F401 - registers the architectures with timm

from ..helpers import TINY

REPO = Path(__file__).resolve().parents[2]
SMALL_VIM = dict(embed_dim=32, depth=2, d_state=4, img_size=64)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("vmamba_tiny", TINY),
        ("vim_tiny", SMALL_VIM),
        ("zeromamba_nano", {}),
        ("zeromamba_vim_tiny", dict(SMALL_VIM, num_attributes=5, semantic_dim=8, fusion_hidden=8)),
    ],
)
def test_create_model_builds_on_the_device_and_dtype_asked_for(name: str, kwargs: dict) -> None:
    model = timm.create_model(name, device="meta", dtype=torch.bfloat16, **kwargs)
    tensors = [*model.parameters(), *model.buffers()]
    assert tensors and all(t.device.type == "meta" for t in tensors)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.in_chans == 3


@pytest.mark.parametrize("name, kwargs, size", [("vmamba_tiny", TINY, 32), ("vim_tiny", SMALL_VIM, 64)])
def test_reset_classifier_after_a_dtype_change_keeps_the_dtype(name: str, kwargs: dict, size: int) -> None:
    model = timm.create_model(name, **kwargs).eval().to(torch.bfloat16)
    model.reset_classifier(7)
    head = model.get_classifier()
    assert head.weight.dtype == torch.bfloat16 and not head.training
    with torch.inference_mode():
        out = model(torch.randn(2, 3, size, size, dtype=torch.bfloat16))
    assert out.shape == (2, 7) and out.dtype == torch.bfloat16


def test_vim_declares_its_fixed_input_size() -> None:
    for name in ("vim_tiny", "vim_small.in1k", "zeromamba_vim_tiny"):
        assert timm.models.get_pretrained_cfg_value(name, "fixed_input_size") is True, name
    model = timm.create_model("vim_tiny", **SMALL_VIM)
    with pytest.raises(ValueError, match="dynamic_img_size=True"):
        model(torch.randn(1, 3, 48, 48))


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_pruned_vmamba_ends_at_the_kept_stage(keep: int) -> None:
    model = timm.create_model("vmamba_tiny", **TINY).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        taps = model.forward_intermediates(x, intermediates_only=True)
    model.prune_intermediate_layers([keep], prune_norm=True)
    info = model.feature_info[-1]
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model(x)
    assert features.shape == (1, info["num_chs"], 64 // info["reduction"], 64 // info["reduction"])
    torch.testing.assert_close(features, taps[keep])
    assert pooled.shape == (1, info["num_chs"]) == (1, model.num_features)


def test_pruning_short_of_the_last_stage_with_the_head_kept_is_refused() -> None:
    model = timm.create_model("vmamba_tiny", **TINY)
    with pytest.raises(ValueError, match="prune_head=True"):
        model.prune_intermediate_layers([1], prune_head=False)


@pytest.mark.parametrize(
    "name, kwargs, size",
    [("vmamba_tiny", TINY, 32), ("vim_tiny", SMALL_VIM, 64), ("vim_tiny", dict(SMALL_VIM, dynamic_img_size=True), 80)],
)
def test_fx_traces_match_eager(name: str, kwargs: dict, size: int) -> None:
    model = timm.create_model(name, **kwargs).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        torch.testing.assert_close(traced(x), model(x))
    model.train()
    traced = torch.fx.symbolic_trace(model)  # the training graph: plain kernels, gradients reach every parameter
    traced(x).sum().backward()
    assert all(p.grad is not None for p in traced.parameters())


def test_torchvision_feature_extractor_on_vmamba() -> None:
    feature_extraction = pytest.importorskip("torchvision.models.feature_extraction")
    model = timm.create_model("vmamba_tiny", **TINY).eval()
    extractor = feature_extraction.create_feature_extractor(model, return_nodes={"layers.1.blocks": "stage1"})
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        got = extractor(x)["stage1"]
        want = model.forward_intermediates(x, indices=[1], output_fmt="NHWC", intermediates_only=True)[0]
    torch.testing.assert_close(got, want)


def test_zeromamba_features_only_gives_the_backbone_stages() -> None:
    nano = timm.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True).eval()
    features = timm.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True, features_only=True).eval()
    x = torch.randn(1, 3, 80, 80)
    with torch.inference_mode():
        maps = features(x)
        want = nano.backbone.forward_intermediates(x, intermediates_only=True)
    assert features.feature_info.channels() == [m.shape[1] for m in maps] == [32, 64]
    assert features.feature_info.reduction() == [4, 8]
    for got, expected in zip(maps, want):
        torch.testing.assert_close(got, expected)  # the shipped weights, loaded before the heads came off


def test_vim_release_loading_is_set_up_by_importing_zeromamba(tmp_path: Path) -> None:
    """``import zeromamba`` then timm's ``vim_tiny.in1k`` with ``pretrained=True``: offline it fails
    saying the Hub is unreachable (the release resolver ran), not "import zeromamba first"."""
    script = (
        "import zeromamba, timm\n"
        "try:\n"
        "    timm.create_model('vim_tiny.in1k', pretrained=True)\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
        ZEROMAMBA_CACHE_DIR=str(tmp_path / "zm"),
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("ModelNotAvailableError"), res.stdout
    assert "before pretrained=True" not in res.stdout
