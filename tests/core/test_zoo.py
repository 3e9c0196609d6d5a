"""The model zoo: the named variants, their namespace, timm tags and the ``list`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from timm.models import get_pretrained_cfg

import zeromamba
from zeromamba import zoo
from zeromamba.errors import UnknownModelError
from zeromamba.models import ZeroMamba

ZSL = ["cub-gzsl", "cub-czsl", "sun-gzsl", "sun-czsl", "awa2-gzsl", "awa2-czsl"]
BACKBONES = ["vmamba-tiny", "vmamba-small", "vmamba-base"]
VIM = ["vim-tiny", "vim-small", "vim-base"]  # the Vim authors' own repositories


def test_the_variants() -> None:
    variants = zeromamba.list_pretrained()
    assert [v.name for v in variants] == ZSL + BACKBONES + VIM + ["shapes-zsl"]  # the embedded demo model last
    assert all(isinstance(v, zeromamba.PretrainedVariant) for v in variants)
    gammas = {"CUB": 0.3, "SUN": 0.35, "AWA2": 0.98}
    attributes = {"CUB": 312, "SUN": 102, "AWA2": 85}
    for v in zeromamba.list_pretrained(task="gzsl") + zeromamba.list_pretrained(task="czsl"):
        assert v.architecture == "zeromamba_small" and v.input_size == (3, 448, 448)
        assert v.gamma == gammas[v.dataset] and v.num_attributes == attributes[v.dataset]
        assert v.model_args["num_attributes"] == attributes[v.dataset]
        assert v.model_args["depths"] == (2, 2, 15, 2) and v.model_args["embed_dim"] == 96
        assert v.source_file == f"{v.dataset}_best{v.task.upper()}.pth"
        assert "authors" in v.authors_metrics_source and v.license and v.license_note
    cub = zoo.get_variant("cub-gzsl")
    assert dict(cub.authors_metrics) == {"gzsl_u": 72.1, "gzsl_s": 76.4, "gzsl_h": 74.2}
    assert dict(zoo.get_variant("sun-czsl").authors_metrics) == {"czsl_acc": 72.4}
    assert dict(zoo.get_variant("awa2-gzsl").authors_metrics)["gzsl_h"] == 76.5
    small = zoo.get_variant("vmamba-small")
    assert small.source_file == "vssm_small_0229_ckpt_epoch_222.pth" and small.license == "mit"
    assert dict(small.authors_metrics) == {"imagenet_top1": 83.6} and small.input_size == (3, 224, 224)
    assert zoo.get_variant("vmamba-tiny").model_args["ssm_ratio"] == 1.0
    assert [v.name for v in zeromamba.list_pretrained(dataset="sun")] == ["sun-gzsl", "sun-czsl"]
    for name, top1 in zip(VIM, (76.1, 80.5, 81.9)):
        vim = zoo.get_variant(name)
        assert vim.repo_id == f"hustvl/Vim-{name[4:]}-midclstok" and vim.hub_format == "vim-release"
        assert dict(vim.authors_metrics) == {"imagenet_top1": top1} and vim.timm_name == f"vim_{name[4:]}.in1k"
    assert zoo.get_variant("vim-tiny").revision == "07c00e0e4ea2973d8e343afdd807128a57bc9fd5"
    with pytest.raises(TypeError):
        cub.model_args["num_attributes"] = 1  # the registry is read-only
    json.dumps([v.to_dict() for v in variants])


def test_names_and_suggestions() -> None:
    cub = zoo.get_variant("cub-gzsl")
    for alias in ("cub_gzsl", "CUB-GZSL", " cub-gzsl ", "zeromamba_small.cub_gzsl"):
        assert zoo.get_variant(alias) is cub
    with pytest.raises(UnknownModelError, match="Did you mean 'sun-gzsl'") as e:
        zoo.get_variant("sun-gszl")
    assert "Known variants: cub-gzsl, cub-czsl" in str(e.value)
    with pytest.raises(UnknownModelError, match="'vmamba-small'"):
        zoo.get_variant("vmamba-smal")
    with pytest.raises(UnknownModelError, match="non-empty string"):
        zoo.get_variant("")


def test_namespace_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(zoo.NAMESPACE_ENV, raising=False)
    assert zoo.get_variant("cub-gzsl").repo_id == "zeromamba/zeromamba-small-cub-gzsl"
    monkeypatch.setenv(zoo.NAMESPACE_ENV, "my-org")
    assert zoo.get_variant("cub-gzsl").repo_id == "my-org/zeromamba-small-cub-gzsl"
    assert zoo.get_variant("vmamba-base").repo_id == "my-org/vmamba-base-in1k"
    monkeypatch.setenv(zoo.NAMESPACE_ENV, "  ")
    assert zoo.hub_namespace() == zoo.DEFAULT_NAMESPACE


def test_timm_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    tags = set(timm.list_pretrained())
    for v in zeromamba.list_pretrained():
        assert v.timm_name in tags
        cfg = get_pretrained_cfg(v.timm_name)
        assert cfg.input_size == v.input_size
        if v.is_local:  # shipped weights: a file inside the package
            assert cfg.file == str(v.local_path() / "model.safetensors") and cfg.hf_hub_id is None
        else:
            assert cfg.hf_hub_id == v.repo_id and cfg.file is None
    assert "zeromamba_small.sun_gzsl" in zeromamba.list_models(pretrained=True)
    assert zoo.timm_model_args("zeromamba_small", "sun_gzsl")["num_attributes"] == 102
    assert zoo.timm_model_args("zeromamba_small", "nope") == {}
    # the untagged architecture still builds with any attribute count (tags declare num_classes=0)
    model = timm.create_model("zeromamba_small", num_attributes=7, embed_dim=8, depths=(1, 1, 1, 1), semantic_dim=8)
    assert isinstance(model, ZeroMamba) and model.num_attributes == 7
    # a namespace changed at run time applies to the next create_model (no refresh, no registry writes)
    monkeypatch.setenv(zoo.NAMESPACE_ENV, "other-org")
    assert timm.create_model("vmamba_base.in1k").pretrained_cfg["hf_hub_id"] == "other-org/vmamba-base-in1k"
    tiny = dict(embed_dim=8, depths=(1, 1, 1, 1), semantic_dim=8)
    small = timm.create_model("zeromamba_small", num_attributes=312, **tiny)
    assert small.pretrained_cfg["hf_hub_id"] == "other-org/zeromamba-small-cub-gzsl"  # timm's default tag
    sun = timm.create_model("zeromamba_small.sun_gzsl", **tiny)
    assert sun.pretrained_cfg["hf_hub_id"] == "other-org/zeromamba-small-sun-gzsl" and sun.num_attributes == 102
    own = timm.create_model("vmamba_tiny", pretrained_cfg_overlay={"hf_hub_id": "me/mine"})
    assert own.pretrained_cfg["hf_hub_id"] == "me/mine"  # the caller's overlay wins
    monkeypatch.delenv(zoo.NAMESPACE_ENV)
    assert timm.create_model("vmamba_base.in1k").pretrained_cfg["hf_hub_id"] == "zeromamba/vmamba-base-in1k"


def test_embedded_variant_loads_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    torch.manual_seed(0)
    model = ZeroMamba(num_attributes=4, semantic_dim=8, embed_dim=8, depths=(1, 1, 1, 1), fusion_hidden=8)
    folder = zeromamba.save_pretrained(
        model, tmp_path / "shapes", class_attributes=torch.eye(4), seen=[0, 1], gamma=0.1
    )
    variant = zoo.PretrainedVariant(
        name="shapes-test",
        architecture="zeromamba_small",
        timm_tag="shapes_test",
        repo_name="unused",
        model_args={},
        task="zsl",
        dataset="shapes",
        package_dir=str(folder),  # absolute here; a package-relative folder in the real embedded variant
    )
    monkeypatch.setitem(zoo._REGISTRY, "shapes-test", variant)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert variant.is_local and variant.local_path() == folder
    # a shipped variant is a timm tag whose weights are the file inside the package
    cfg = zoo.timm_pretrained_cfgs("zeromamba_small")["zeromamba_small.shapes_test"]
    assert cfg["file"] == str(folder / "model.safetensors") and "hf_hub_id" not in cfg
    assert variant.availability() == "shipped" and not variant.known_unpublished()
    p = zeromamba.from_pretrained("shapes-test")
    assert p.num_classes == 4 and p.gamma == pytest.approx(0.1)
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_variant(variant)


def test_list_prints_a_table_with_availability(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "ENDPOINT", zoo.DEFAULT_ENDPOINT)
    monkeypatch.delenv(zoo.NAMESPACE_ENV, raising=False)
    variants = zeromamba.list_pretrained()
    lines = str(variants).splitlines()
    assert lines[0].split()[:3] == ["name", "timm", "name"] and lines[0].rstrip().endswith("available")
    row = {line.split()[0]: line.split()[-1] for line in lines[2 : 2 + len(variants)]}
    assert row["shapes-zsl"] == "shipped" and row["cub-gzsl"] == "unpublished"
    assert repr(variants) == str(variants) and "unpublished: not uploaded" in str(variants)
    assert isinstance(variants, list) and variants[0].name == "cub-gzsl"
    # the converted variants are known not to be on huggingface.co yet; elsewhere they may be
    cub = zoo.get_variant("cub-gzsl")
    assert not cub.published and cub.known_unpublished()
    monkeypatch.setenv(zoo.NAMESPACE_ENV, "my-org")
    assert not cub.known_unpublished() and cub.availability() == "hub"
    monkeypatch.delenv(zoo.NAMESPACE_ENV)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # a mirror (HF_ENDPOINT)
    assert cub.availability() == "hub"


def test_the_shipped_model_through_timm(no_network: None) -> None:
    """Listed by timm, created offline with pretrained=True, identical to from_pretrained's model."""
    assert "zeromamba_nano_s8.shapes_zsl" in timm.list_pretrained("zeromamba*")
    assert "zeromamba_nano_s8.shapes_zsl" in zeromamba.list_models(pretrained=True)
    model = timm.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True).eval()
    reference = zeromamba.from_pretrained("shapes-zsl").model
    assert isinstance(model, ZeroMamba) and model.num_attributes == 10
    ours, theirs = model.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    x = torch.randn(2, 3, 80, 80)
    with torch.inference_mode():
        assert torch.equal(model(x).attributes, reference(x).attributes)
    # the architecture's default tag is the shipped one; the data config is the model's
    default = timm.create_model("zeromamba_nano_s8", pretrained=True)
    assert all(torch.equal(v, theirs[k]) for k, v in default.state_dict().items())
    assert timm.data.resolve_data_config({}, model=model)["input_size"] == (3, 112, 112)
    # without pretrained=True the architecture still takes any attribute count
    assert timm.create_model("zeromamba_nano_s8", num_attributes=7).num_attributes == 7
    # the previous demo architecture stays available, without shipped weights
    assert "zeromamba_nano.shapes_zsl" not in timm.list_pretrained("zeromamba*")
    assert timm.create_model("zeromamba_nano", num_attributes=7).num_attributes == 7


def test_imagenet_variants_are_the_vmamba_and_vim_backbones() -> None:
    rows = [v.to_dict() for v in zeromamba.list_pretrained(task="imagenet")]
    assert [r["name"] for r in rows] == BACKBONES + VIM and rows[0]["authors_metrics"] == {"imagenet_top1": 82.5}
