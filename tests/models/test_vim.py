"""Vim against the Vim authors' own outputs (tests/fixtures/vim) on every backend this machine
has, the release files' names and shapes, timm's interface, and ZeroMamba on Vim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import zeromamba
from zeromamba.errors import CheckpointError
from zeromamba.models import Vim, ZeroMambaVim
from zeromamba.models.vim import checkpoint_filter_fn, resample_pos_embed
from zeromamba.ops.mixer_cpu import mixer_cpu_available

from ..helpers import fixture_dirs, fixtures_root, scaled_error

FIXTURES = [p.name for p in fixture_dirs("vim")]
# "fused_cpu" needs a C compiler (CI and the dev machines have one); "triton" runs in the
# interpreter below; "mamba" needs CUDA (the cuda-marked test)
BACKENDS = ["reference", "torch", "fused_cpu", "auto"]
# the reference's per-step autograd graph makes it the slow one
DIFFERENTIABLE = [pytest.param("reference", marks=pytest.mark.slow), "torch", "auto"]


def _load(name: str, backend: str) -> tuple[Vim, dict[str, torch.Tensor]]:
    """The fixture's model through load_official, as a user loads a release file."""
    root = fixtures_root("vim") / name
    meta = json.loads((root / "meta.json").read_text())["config"]
    size = meta["img_size"]
    model = zeromamba.load_official(
        root / "vim_official_format.pth",
        img_size=tuple(size) if isinstance(size, list) else size,
        stride=meta["stride"],
        scan_backend=backend,
    )
    assert isinstance(model, Vim) and model.head.out_features == meta["num_classes"]
    return model, load_file(root / "expected.safetensors")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", FIXTURES)
def test_outputs_match_the_authors_code(name: str, backend: str) -> None:
    if backend == "fused_cpu" and not mixer_cpu_available():
        pytest.skip("the fused CPU kernels did not build here")
    model, expected = _load(name, backend)
    with torch.no_grad():
        tokens = model.forward_features(expected["input0"])
        features = model.forward_head(tokens, pre_logits=True)
        logits = model.forward_head(tokens)
        assert torch.equal(model(expected["input0"]), logits)
    assert scaled_error(tokens, expected["input0.tokens"]) < 1e-4
    assert scaled_error(features, expected["input0.features"]) < 1e-4
    assert scaled_error(logits, expected["input0.logits"]) < 1e-4


@pytest.mark.parametrize("backend", DIFFERENTIABLE)
@pytest.mark.parametrize("name", FIXTURES)
def test_gradients_match_the_authors_code(name: str, backend: str) -> None:
    model, expected = _load(name, backend)
    model.train()  # drop-path 0, as in the fixture's training step
    loss = F.cross_entropy(model(expected["input0"]), expected["train.labels"])
    loss.backward()
    assert loss.item() == pytest.approx(expected["train.loss"].item(), rel=1e-5)
    grads = {k[len("train.grad.") :]: v for k, v in expected.items() if k.startswith("train.grad.")}
    params = dict(model.named_parameters())
    assert params.keys() == grads.keys()  # the official parameter names, every one
    for official_name, want in grads.items():
        assert scaled_error(params[official_name].grad, want) < 1e-3, official_name


@pytest.mark.slow
def test_triton_backend_matches_the_authors_code_in_interpreter() -> None:
    """The Triton kernels inside the whole model, through Triton's CPU interpreter."""
    script = (
        "import json, torch, sys\n"
        "sys.path.insert(0, '.')\n"
        "from tests.models.test_vim import _load, FIXTURES\n"
        "from tests.helpers import scaled_error\n"
        "out = {}\n"
        "for name in FIXTURES:\n"
        "    model, e = _load(name, 'triton')\n"
        "    with torch.no_grad():\n"
        "        tokens = model.forward_features(e['input0'])\n"
        "    logits = model.forward_head(tokens)\n"
        "    out[name] = [scaled_error(tokens, e['input0.tokens']), scaled_error(logits, e['input0.logits'])]\n"
        "print(json.dumps(out))\n"
    )
    env = dict(os.environ, TRITON_INTERPRET="1")
    repo = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=repo, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    errors = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(errors) == sorted(FIXTURES)
    assert all(err < 1e-4 for errs in errors.values() for err in errs), errors


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "mamba", "auto"])
@pytest.mark.parametrize("name", FIXTURES)
def test_cuda_backends_match_the_authors_code(name: str, backend: str) -> None:
    from zeromamba.ops.mixer_cuda import causal_conv1d_available, mamba_ssm_available

    if backend == "mamba" and not (mamba_ssm_available() and causal_conv1d_available()):
        pytest.skip("mamba-ssm / causal-conv1d not installed (pip install 'zeromamba[cuda]')")
    model, expected = _load(name, backend)
    model = model.cuda()
    with torch.no_grad():
        tokens = model.forward_features(expected["input0"].cuda()).cpu()
    assert scaled_error(tokens, expected["input0.tokens"]) < 1e-4
    if backend != "triton":  # forward only
        model.train()
        loss = F.cross_entropy(model(expected["input0"].cuda()), expected["train.labels"].cuda())
        loss.backward()
        for k, p in model.named_parameters():
            assert scaled_error(p.grad.cpu(), expected["train.grad." + k]) < 1e-3, k


@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_names_and_shapes_are_the_release_files(vim_fixtures: Path, size: str) -> None:
    manifest = json.loads((vim_fixtures / "vim_checkpoint_manifest.json").read_text())
    with torch.device("meta"):  # no memory for vim_base's 97.6M parameters
        model = timm.create_model(f"vim_{size}")
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == manifest[f"vim_{size}"]
    count = sum(p.numel() for p in model.parameters())
    assert count == manifest[f"vim_{size}.num_params"] == {"tiny": 7148008, "small": 25796584, "base": 97598440}[size]


def test_pos_embed_resize_keeps_the_class_token_and_the_grid() -> None:
    grid = torch.arange(16.0).reshape(1, 4, 4)
    pos = torch.cat([grid.flatten(1)[:, :8], torch.tensor([[-1.0]]), grid.flatten(1)[:, 8:]], dim=1).unsqueeze(-1)
    same = resample_pos_embed(pos, (4, 4))
    assert same is pos
    bigger = resample_pos_embed(pos, (8, 8))
    assert bigger.shape == (1, 65, 1) and bigger[0, 32, 0] == -1.0  # the class token, in the middle again
    patches = torch.cat([bigger[:, :32], bigger[:, 33:]], dim=1).reshape(8, 8)
    assert torch.all(patches[:, 1:] >= patches[:, :-1] - 1e-4) and torch.all(patches[1:] > patches[:-1])  # still a grid
    with pytest.raises(CheckpointError, match="not a square grid"):
        resample_pos_embed(torch.zeros(1, 46, 3), (4, 4))
    non_square = resample_pos_embed(torch.zeros(1, 46, 3), (3, 5), old_grid=(5, 9))
    assert non_square.shape == (1, 16, 3)


def test_load_at_another_size_and_dynamic_size(vim_fixtures: Path) -> None:
    path = vim_fixtures / "vim_ds16" / "vim_official_format.pth"
    model = zeromamba.load_official(path, img_size=128)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert model.forward_features(x).shape == (1, 65, 32)
    with pytest.raises(ValueError, match="built for 128 x 128"):
        model(torch.randn(1, 3, 64, 64))
    dynamic = zeromamba.load_official(path, dynamic_img_size=True)
    same = zeromamba.load_official(path, img_size=128)
    with torch.no_grad():
        assert torch.allclose(dynamic(x), same(x), atol=1e-6)  # resized on the fly = resized on load
    sd = torch.load(path, weights_only=True)
    assert torch.equal(checkpoint_filter_fn(sd, zeromamba.load_official(path))["pos_embed"], sd["model"]["pos_embed"])


def test_timm_interface() -> None:
    model = timm.create_model("vim_tiny", depth=4, img_size=64, num_classes=7).eval()
    assert (
        model.num_features == model.head_hidden_size == 192 and model.pretrained_cfg["first_conv"] == "patch_embed.proj"
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert tokens.shape == (2, 17, 192)
        assert torch.equal(model.forward_head(tokens, pre_logits=True), tokens[:, 8])
        final, inter = model.forward_intermediates(x, indices=2, norm=True)
        assert torch.equal(final, tokens) and len(inter) == 2 and inter[-1].shape == (2, 192, 4, 4)
        last = torch.cat([tokens[:, :8], tokens[:, 9:]], 1).transpose(1, 2).reshape(2, 192, 4, 4)
        assert torch.allclose(inter[-1], last)
        nlc = model.forward_intermediates(x, indices=[0], output_fmt="NLC", intermediates_only=True)
        assert nlc[0].shape == (2, 16, 192)
    features = timm.create_model("vim_tiny", depth=4, img_size=64, features_only=True, out_indices=(1, 3)).eval()
    with torch.no_grad():
        maps = features(x)
    assert [m.shape for m in maps] == [(2, 192, 4, 4)] * 2
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    stride8 = timm.create_model("vim_small_stride8", depth=1)
    assert stride8.pos_embed.shape == (1, 27 * 27 + 1, 384)
    with pytest.raises(ValueError, match="class token"):
        timm.create_model("vim_tiny", depth=1, global_pool="avg")
    with pytest.raises(ValueError, match="unknown scan backend"):
        model.set_scan_backend("cuda")


def test_grad_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = Vim(img_size=32, embed_dim=16, depth=3, num_classes=4, scan_backend="torch")
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for enable in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        model(x).square().sum().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    assert all(torch.allclose(grads[0][k], grads[1][k], atol=1e-6) for k in grads[0])


def test_zeromamba_vim_at_448_attends_over_a_28_by_28_grid() -> None:
    model = timm.create_model("zeromamba_vim_tiny", num_attributes=12, semantic_dim=20).eval()
    assert isinstance(model, ZeroMambaVim) and isinstance(model, zeromamba.ZeroMamba)
    x = torch.randn(1, 3, 448, 448)
    with torch.no_grad():
        out = model(x)
        tokens = model.backbone.forward_features(x)
    assert out.attention.shape == (1, 12, 28 * 28) and out.features.shape == (1, 192, 28, 28)
    assert out.attributes.shape == out.local_attributes.shape == out.global_attributes.shape == (1, 12)
    # the composition: SLP on the patch grid (class token removed), GRL on Vim's own logits
    middle = 28 * 28 // 2
    grid = torch.cat([tokens[:, :middle], tokens[:, middle + 1 :]], 1).transpose(1, 2).reshape(1, 192, 28, 28)
    assert torch.equal(out.features, grid)
    assert torch.equal(out.logits, model.backbone.head(tokens[:, middle]))
    local, attention = model.slp(grid)
    assert torch.equal(out.local_attributes, local) and torch.equal(out.attention, attention)
    assert torch.equal(out.attributes, model.fusion(model.global_head(out.logits), local))


def test_zeromamba_vim_save_and_load(tmp_path: Path) -> None:
    model = ZeroMambaVim(num_attributes=5, variant="tiny", depth=2, img_size=48, semantic_dim=8).eval()
    folder = zeromamba.save_pretrained(model, tmp_path / "zm", class_attributes=torch.rand(4, 5))
    loaded = zeromamba.load_model(folder)
    assert isinstance(loaded, ZeroMambaVim)
    x = torch.randn(1, 3, 48, 48)
    via_timm = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()  # the folder as timm reads it
    with torch.no_grad():
        assert torch.equal(loaded(x).attributes, model(x).attributes)
        assert torch.equal(via_timm(x).attributes, model(x).attributes)
    backbone = Vim(img_size=32, embed_dim=16, depth=2, num_classes=3, stride=8).eval()
    loaded = zeromamba.load_model(zeromamba.save_pretrained(backbone, tmp_path / "vim"))
    assert isinstance(loaded, Vim) and loaded.patch_embed.stride == 8
    with torch.no_grad():
        assert torch.equal(loaded(torch.randn(1, 3, 32, 32) * 0), backbone(torch.randn(1, 3, 32, 32) * 0))


def test_vim_release_init_into_zeromamba_vim(vim_fixtures: Path) -> None:
    from zeromamba.models.zeromamba_vim import checkpoint_filter_fn as zm_filter

    sd = torch.load(vim_fixtures / "vim_ds16" / "vim_official_format.pth", weights_only=True)["model"]
    model = ZeroMambaVim(num_attributes=3, embed_dim=32, depth=4, img_size=128, num_imagenet_classes=7)
    heads = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    model.load_state_dict(zm_filter(sd, model))
    assert torch.equal(model.backbone.layers[3].mixer.A_b_log, sd["layers.3.mixer.A_b_log"])
    assert model.backbone.pos_embed.shape == (1, 65, 32)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in heads.items())  # heads keep their values
