"""The timm-facing model interface: registration, features, heads, checkpointing, configs."""

from __future__ import annotations

import pytest
import timm
import torch

import zeromamba
from zeromamba.models import SemanticLocalProjection, VMamba, ZeroMamba, ZeroMambaOutput

from ..helpers import TINY


def test_timm_finds_our_models():
    names = timm.list_models("*mamba*")
    for arch in ("vmamba_tiny", "vmamba_small", "vmamba_base", "zeromamba_small", "zeromamba_nano"):
        assert arch in names
    assert zeromamba.list_models("vmamba*") == ["vmamba_base", "vmamba_small", "vmamba_tiny"]
    assert "mambaout_tiny" not in zeromamba.list_models("*")  # only ours


@pytest.mark.parametrize("arch", ["vmamba_tiny", "zeromamba_nano"])
def test_entry_points_build_the_shared_architecture_table(arch: str) -> None:
    """The timm entry point, the zoo and the saved config all describe a model by the same table."""
    from zeromamba.architectures import VMAMBA_ARCHITECTURES, ZEROMAMBA_ARCHITECTURES
    from zeromamba.format import model_config

    table = {**VMAMBA_ARCHITECTURES, **ZEROMAMBA_ARCHITECTURES}[arch]
    name, args = model_config(
        zeromamba.create_model(arch, num_attributes=10) if "zero" in arch else timm.create_model(arch)
    )
    assert name == arch
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in args.items() if k in table} == table


def test_create_model_through_timm_and_zeromamba():
    m = timm.create_model("zeromamba_small", num_attributes=5, semantic_dim=7, **TINY)
    assert isinstance(m, ZeroMamba) and m.num_attributes == 5
    assert m.pretrained_cfg["input_size"] == (3, 448, 448)
    b = zeromamba.create_model("vmamba_small", num_classes=3, **TINY)
    assert isinstance(b, VMamba) and b.num_classes == 3
    assert b.pretrained_cfg["first_conv"] == "patch_embed.0" and b.pretrained_cfg["classifier"] == "classifier.head"
    assert isinstance(b.get_submodule(b.pretrained_cfg["first_conv"]), torch.nn.Conv2d)
    assert b.get_submodule(b.pretrained_cfg["classifier"]) is b.get_classifier()
    with pytest.raises(zeromamba.UnknownModelError, match="vmamba_small"):
        zeromamba.create_model("vmamba_smal")


def test_published_sizes():
    with torch.device("meta"):
        for name, params in (("vmamba_tiny", 30249064), ("vmamba_small", 50147752), ("vmamba_base", 88580136)):
            m = zeromamba.create_model(name)
            n = sum(p.numel() for p in m.parameters())
            assert abs(n - params) / params < 0.01, (name, n)
        zm = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300)
        assert zm.num_features == 768 and zm.head_hidden_size == 768


@pytest.mark.parametrize("size", [(64, 64), (72, 40), (70, 70)])
def test_vmamba_interface(size):
    m = VMamba(num_classes=7, **TINY).eval()
    x = torch.randn(2, 3, *size)
    with torch.inference_mode():
        feats = m.forward_features(x)
        assert feats.shape == (2, m.num_features, -(-size[0] // 32), -(-size[1] // 32))
        assert m.forward_head(feats).shape == (2, 7)
        assert m.forward_head(feats, pre_logits=True).shape == (2, m.num_features)
        final, inter = m.forward_intermediates(x)
        assert torch.allclose(final, feats) and len(inter) == 4
        assert [t.shape[1] for t in inter] == [f["num_chs"] for f in m.feature_info]
        assert [f["reduction"] for f in m.feature_info] == [4, 8, 16, 32]
    m.reset_classifier(3)
    with torch.inference_mode():
        assert m.forward_head(feats).shape == (2, 3) and m.num_classes == 3
        m.reset_classifier(0)
        assert m.forward_head(feats).shape == (2, m.num_features)


def test_features_only():
    m = timm.create_model("vmamba_tiny", features_only=True, out_indices=(1, 3), **TINY).eval()
    with torch.inference_mode():
        outs = m(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == m.feature_info.channels() == [16, 64]
    assert [o.shape[-1] for o in outs] == [8, 2]


def test_zeromamba_output_fields():
    m = ZeroMamba(num_attributes=6, semantic_dim=5, **TINY).eval()
    with torch.inference_mode():
        out = m(torch.randn(2, 3, 64, 96))
    assert isinstance(out, ZeroMambaOutput)
    assert out.attributes.shape == out.local_attributes.shape == out.global_attributes.shape == (2, 6)
    assert out.features.shape == (2, 64, 2, 3) and out.attention.shape == (2, 6, 6) and out.logits.shape == (2, 1000)
    assert torch.allclose(out.attention.sum(-1), torch.ones(2, 6))
    assert set(out.to_dict()) == {
        "attributes",
        "local_attributes",
        "global_attributes",
        "attention",
        "features",
        "logits",
    }


def test_semantic_matrix_from_embeddings():
    emb = torch.randn(6, 5)
    m = ZeroMamba(num_attributes=6, semantic_dim=5, attribute_embeddings=emb, **TINY)
    assert torch.equal(m.slp.V.detach(), emb)
    with pytest.raises(ValueError, match="num_attributes x semantic_dim"):
        ZeroMamba(num_attributes=6, semantic_dim=5, attribute_embeddings=torch.randn(5, 6), **TINY)


def test_slp_matches_its_definition():
    slp = SemanticLocalProjection(4, 8, 6)
    f = torch.randn(2, 8, 3, 2)
    local, attn = slp(f)
    fn = f.flatten(2) / f.flatten(2).norm(dim=1, keepdim=True)
    s = slp.V / slp.V.norm(dim=1, keepdim=True)
    m = torch.softmax(s @ slp.W1 @ fn, dim=-1)
    p = m @ fn.transpose(1, 2)
    want = ((s @ slp.W2).unsqueeze(0) * p).sum(-1)
    assert torch.allclose(attn, m, atol=1e-6) and torch.allclose(local, want, atol=1e-5)


def test_grad_checkpointing_gives_same_gradients():
    m = ZeroMamba(num_attributes=4, semantic_dim=5, **TINY).train()
    x = torch.randn(1, 3, 64, 64)
    m(x).attributes.square().sum().backward()
    want = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    m.set_grad_checkpointing(True)
    assert all(stage.grad_checkpointing for stage in m.backbone.layers)
    m(x).attributes.square().sum().backward()
    for n, p in m.named_parameters():
        assert torch.allclose(p.grad, want[n], atol=1e-5, rtol=1e-4), n


def test_scan_backend_switch_and_validation():
    m = ZeroMamba(num_attributes=4, semantic_dim=5, **TINY).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        m.set_scan_backend("reference")
        ref = m(x).attributes
        m.set_scan_backend("torch")
        fast = m(x).attributes
    assert torch.allclose(ref, fast, atol=1e-5)
    with pytest.raises(ValueError, match="unknown scan backend"):
        m.set_scan_backend("nope")
    with pytest.raises(ValueError, match="scan_backend"):
        VMamba(scan_backend="nope", **TINY)
    with pytest.raises(TypeError, match="unexpected"):
        ZeroMamba(num_attributes=4, bogus=1, **TINY)


def test_no_weight_decay_and_group_matcher():
    m = ZeroMamba(num_attributes=4, semantic_dim=5, **TINY)
    nwd = m.no_weight_decay()
    assert "backbone.layers.0.blocks.0.op.A_logs" in nwd and "backbone.layers.0.blocks.0.op.Ds" in nwd
    groups = timm.models.group_parameters(m.backbone, m.backbone.group_matcher())
    assert len(groups) > 4


def test_channels_last_and_batch_consistency():
    m = ZeroMamba(num_attributes=4, semantic_dim=5, **TINY).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        batched = m(x).attributes
        single = torch.cat([m(x[i : i + 1]).attributes for i in range(3)])
        cl = m(x.contiguous(memory_format=torch.channels_last)).attributes
    assert torch.allclose(batched, single, atol=1e-5) and torch.allclose(batched, cl, atol=1e-6)


def test_timm_tags_carry_their_attribute_count():
    # a tag's weights fix num_attributes; creating it without pretrained weights must agree
    for tag, width in (("cub_gzsl", 312), ("sun_czsl", 102), ("awa2_gzsl", 85)):
        m = timm.create_model(f"zeromamba_small.{tag}", **TINY)
        assert m.num_attributes == width, tag
    assert timm.create_model("zeromamba_small", num_attributes=9, **TINY).num_attributes == 9


def test_zeromamba_backbone_variants():
    with torch.device("meta"):
        tiny = ZeroMamba(num_attributes=4, semantic_dim=5, variant="tiny")
        base = ZeroMamba(num_attributes=4, semantic_dim=5, variant="vmamba_base")
        mixed = ZeroMamba(num_attributes=4, semantic_dim=5, variant="base", depths=(1, 1, 1, 1))
    assert tiny.backbone.depths == (2, 2, 8, 2) and tiny.backbone.layers[0].blocks[0].op.d_inner == 96
    assert base.backbone.dims[0] == 128 and base.num_features == 1024
    assert mixed.backbone.depths == (1, 1, 1, 1) and mixed.backbone.dims[0] == 128
    with pytest.raises(ValueError, match="backbone variant"):
        ZeroMamba(num_attributes=4, variant="huge")
