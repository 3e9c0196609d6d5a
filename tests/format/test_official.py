"""load_official: safe reading, architecture inference, and errors that name what is wrong."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch

import zeromamba
from zeromamba.errors import CheckpointError
from zeromamba.models import VMamba, ZeroMamba
from zeromamba.models.zeromamba import OFFICIAL_PREFIXES
from zeromamba.official import infer_architecture

from ..helpers import TINY, fixtures_root


class NotATensor:  # a pickled object of an arbitrary class: weights_only must refuse it
    def __init__(self):
        self.x = 1


def _to_official(name: str) -> str:
    for official, ours in OFFICIAL_PREFIXES:
        if name.startswith(ours):
            return official + name[len(ours) :]
    raise AssertionError(name)


def test_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError, match=r"unpickler to import tests\.format\.test_official\.NotATensor"):
        zeromamba.load_official(path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        zeromamba.load_official(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        zeromamba.load_official(tmp_path / "junk.pth")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="patch_embed"):
        zeromamba.load_official(tmp_path / "other.pth")


def test_truncated_checkpoint(tmp_path):
    src = fixtures_root() / "parity_dstate4" / "zeromamba_official_format.pth"
    data = src.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        zeromamba.load_official(tmp_path / "cut.pth")


def test_mismatches_are_named(tmp_path):
    src = fixtures_root() / "parity_dstate4" / "zeromamba_official_format.pth"
    sd = torch.load(src, weights_only=True)
    sd["VisionMamba.layers.0.blocks.0.mlp.fc1.bias"] = torch.zeros(3)  # wrong shape
    sd["VisionMamba.extra.weight"] = torch.zeros(2)  # unexpected
    del sd["clf_head2.2.weight"]  # missing
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        zeromamba.load_official(tmp_path / "bad.pth")
    msg = str(e.value)
    assert "fusion.mlp.2.weight" in msg and "missing" in msg
    assert "backbone.extra.weight" in msg and "unexpected" in msg
    assert "backbone.layers.0.blocks.0.mlp.fc1.bias" in msg and "shape mismatch" in msg


def test_wrapped_and_ddp_checkpoints(tmp_path):
    src = fixtures_root() / "parity_dstate4" / "zeromamba_official_format.pth"
    sd = torch.load(src, weights_only=True)
    torch.save({"state_dict": OrderedDict(("module." + k, v) for k, v in sd.items())}, tmp_path / "ddp.pth")
    a = zeromamba.load_official(src)
    b = zeromamba.load_official(tmp_path / "ddp.pth")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_model_args_override_inference(tmp_path):
    src = fixtures_root() / "parity_dstate4" / "zeromamba_official_format.pth"
    model = zeromamba.load_official(src, scan_backend="reference")
    assert all(m.scan_backend == "reference" for m in model.modules() if hasattr(m, "scan_backend"))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        zeromamba.load_official(src, embed_dim=32)


def _manifest():
    return json.loads((fixtures_root() / "official_checkpoint_manifest.json").read_text())


@pytest.mark.parametrize(
    "variant, arch",
    [
        ("vmambav2_tiny_imagenet", "vmamba_tiny"),
        ("vmambav2_small_imagenet", "vmamba_small"),
        ("vmambav2_base_imagenet", "vmamba_base"),
        ("zeromamba_small_CUB", "zeromamba_small"),
        ("zeromamba_small_SUN", "zeromamba_small"),
        ("zeromamba_small_AWA2", "zeromamba_small"),
    ],
)
def test_official_key_sets_and_shapes(variant, arch):
    manifest = _manifest()
    official = {k: tuple(v) for k, v in manifest[variant].items()}
    args = infer_architecture({k: torch.empty(v, device="meta") for k, v in official.items()})
    with torch.device("meta"):  # shapes only, no 50M-parameter allocation
        if arch.startswith("zeromamba"):
            model = zeromamba.create_model(
                arch, num_attributes=args["num_attributes"], semantic_dim=args["semantic_dim"]
            )
        else:
            model = zeromamba.create_model(arch)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if isinstance(model, ZeroMamba):
        ours = {_to_official(k): v for k, v in ours.items()}
        if "clf_head.bias" not in official:  # training-script checkpoints carry no bias
            ours.pop("clf_head.bias")
    assert set(ours) == set(official), (sorted(set(ours) - set(official))[:5], sorted(set(official) - set(ours))[:5])
    assert ours == official
    assert sum(v.numel() for v in model.state_dict().values()) == manifest[f"{variant}_params"]


def test_infer_architecture_reads_the_published_configs():
    m = _manifest()

    def meta(name):
        return {k: torch.empty(v, device="meta") for k, v in m[name].items()}

    tiny = infer_architecture(meta("vmambav2_tiny_imagenet"))
    assert tiny["depths"] == (2, 2, 8, 2) and tiny["ssm_ratio"] == 1.0 and tiny["embed_dim"] == 96
    base = infer_architecture(meta("vmambav2_base_imagenet"))
    assert base["depths"] == (2, 2, 15, 2) and base["embed_dim"] == 128 and base["d_state"] == 1
    cub = infer_architecture(meta("zeromamba_small_CUB"))
    assert cub["num_attributes"] == 312 and cub["semantic_dim"] == 300 and cub["ssm_ratio"] == 2.0


def test_vmamba_roundtrip_through_release_format(tmp_path):
    model = VMamba(**TINY, num_classes=10).eval()
    torch.save({"model": model.state_dict()}, tmp_path / "release.pth")
    loaded = zeromamba.load_official(tmp_path / "release.pth")
    x = torch.randn(1, 3, 64, 48)
    with torch.inference_mode():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)
