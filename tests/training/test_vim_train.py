"""ZeroMamba on Vim: training a few steps from the Vim ImageNet release (served by the loopback
Hub, or a local release file), on the shapes data through the CLI and on the miniature xlsa17
set, then saving, reloading with from_pretrained and explaining an image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zeromamba
from zeromamba.architectures import VIM_ARCHITECTURES
from zeromamba.errors import ConfigError
from zeromamba.models import ZeroMambaVim
from zeromamba.models.vim import resample_pos_embed
from zeromamba.train import build_model, resolve_config, train
from zeromamba.zoo import get_variant

from ..fakehub import FakeHub
from ..helpers import vim_release
from ..mini_xlsa17 import NUM_ATTR, mini_train_config

pytestmark = pytest.mark.filterwarnings("ignore:no attribute embeddings")


@pytest.fixture(scope="module")
def release() -> tuple[dict[str, torch.Tensor], bytes]:
    return vim_release("tiny", seed=5)


def _backbone_matches_release(model: ZeroMambaVim, state: dict[str, torch.Tensor], atol: float) -> None:
    own = model.backbone.state_dict()
    grid = model.backbone.patch_embed.grid_size
    for k, v in state.items():
        want = resample_pos_embed(v.unsqueeze(0) if v.dim() == 2 else v, grid) if k == "pos_embed" else v
        assert torch.allclose(own[k], want, atol=atol), k


def test_vim_architecture_defaults_and_init_from_a_local_release(
    mini_xlsa17: dict[str, Path], tmp_path: Path, release
) -> None:
    state, blob = release
    (tmp_path / "vim_t_midclstok_76p1acc.pth").write_bytes(blob)
    given = mini_train_config(mini_xlsa17, tmp_path / "run", architecture="zeromamba_vim_tiny")
    del given["model"], given["init"]  # the Vim architecture brings its own backbone and init
    cfg = resolve_config(given)
    assert cfg.model == dict(VIM_ARCHITECTURES["vim_tiny"]) and cfg.init == "vim-tiny"

    cfg = resolve_config({**given, "init": str(tmp_path / "vim_t_midclstok_76p1acc.pth")})
    model = build_model(cfg, NUM_ATTR)
    assert isinstance(model, ZeroMambaVim) and model.backbone.patch_embed.img_size == (32, 32)
    _backbone_matches_release(model, state, atol=0)  # exactly the release, positions resized to 2 x 2

    with pytest.raises(ConfigError, match="architecture must be one of"):
        resolve_config({**given, "architecture": "zeromamba_vim_huge"})


@pytest.mark.slow
def test_mini_xlsa17_train_save_reload_explain(mini_xlsa17: dict[str, Path], tmp_path: Path, release) -> None:
    state, blob = release
    (tmp_path / "release.pth").write_bytes(blob)
    cfg = mini_train_config(
        mini_xlsa17,
        tmp_path / "run",
        architecture="zeromamba_vim_tiny",
        init=str(tmp_path / "release.pth"),
        selection="last",
        epochs=1,
        max_steps_per_epoch=3,
    )
    del cfg["model"]
    result = train(cfg)
    assert result.history[0]["steps"] == 3 and np.isfinite(result.history[0]["loss"])
    config = json.loads((Path(result.model_dir) / "config.json").read_text())
    assert config["architecture"] == "zeromamba_vim_tiny" and config["model_args"]["img_size"] == [32, 32]

    predictor = zeromamba.from_pretrained(result.model_dir)
    assert isinstance(predictor.model, ZeroMambaVim)
    _backbone_matches_release(predictor.model, state, atol=0.02)  # three small SGD steps from the release
    img = next((mini_xlsa17["image_root"] / "CUB_200_2011" / "images" / "007.Class_6").iterdir())
    result = predictor.classify(str(img), top_k=3)
    assert len(result.indices) == 3
    explanation = predictor.explain(str(img), top_k=2)  # the default method's maps, placed on the image
    with Image.open(img) as opened:
        assert explanation.maps.shape == (2, opened.height, opened.width)
    attention = predictor.explain(str(img), top_k=2, method="attention")
    assert attention.attention.shape == (2, 2, 2)  # SLP attention on the 2 x 2 patch grid of a 32 px input
    assert np.allclose(attention.attention.sum((-2, -1)), 1.0, atol=1e-5)


@pytest.mark.slow
def test_cli_trains_on_shapes_from_the_hub_release(fakehub: FakeHub, tmp_path: Path, release) -> None:
    """``zeromamba train --architecture zeromamba_vim_tiny --init vim-tiny`` as a user runs it,
    with the release served by the loopback Hub (HF_ENDPOINT)."""
    state, blob = release
    fakehub.publish(
        "hustvl/Vim-tiny-midclstok", {"vim_t_midclstok_76p1acc.pth": blob}, commit=get_variant("vim-tiny").revision
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=fakehub.url,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        ZEROMAMBA_CACHE_DIR=str(tmp_path / "zm-cache"),
        OMP_NUM_THREADS="1",  # two shared CI cores: spinning OpenMP threads would only wait on each other
    )
    out = tmp_path / "run"
    args = ["--dataset", "shapes", "--architecture", "zeromamba_vim_tiny", "--init", "vim-tiny", "--output", str(out)]
    args += ["--image-size", "64", "--batch-size", "8", "--epochs", "1", "--max-steps-per-epoch", "3"]
    args += ["--selection", "last", "--workers", "0", "--progress", "off", "--device", "cpu", "--amp", "off"]
    args += ["--set", "eval_batch_size=256"]
    cli = Path(sys.executable).with_name("zeromamba")
    res = subprocess.run([str(cli), "train", *args], env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "model saved to" in res.stdout
    assert (tmp_path / "zm-cache" / "releases" / "hustvl--Vim-tiny-midclstok").is_dir()  # read once, cached

    predictor = zeromamba.from_pretrained(str(out / "model"))
    assert isinstance(predictor.model, ZeroMambaVim) and predictor.num_classes == 36
    _backbone_matches_release(predictor.model, state, atol=0.02)
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    explanation = predictor.explain(image, top_k=3)
    assert explanation.maps.shape == (3, 64, 64)  # maps placed on the 64 x 64 image
    attention = predictor.explain(image, top_k=3, method="attention")
    assert attention.attention.shape == (3, 4, 4)  # the SLP attention on the 4 x 4 patch grid at 64 px
