"""load_official on Vim release files: recognised by their keys, the architecture read off the
shapes, the trainer's extra entries accepted, and any pickled object beyond argparse.Namespace
refused without running it."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest
import torch

import zeromamba
from zeromamba.errors import CheckpointError
from zeromamba.models import Vim
from zeromamba.official import infer_vim_architecture, read_official_state_dict

from ..helpers import vim_release


class _Touch:
    """Unpickling this calls ``open(path, "w")``."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.path), "w"))


def test_a_release_file_loads_with_its_trainer_entries(tmp_path: Path) -> None:
    state, blob = vim_release("tiny", seed=7)
    path = tmp_path / "vim_t_midclstok_76p1acc.pth"
    path.write_bytes(blob)
    model = zeromamba.load_official(path)
    assert isinstance(model, Vim) and not model.training
    assert model.patch_embed.img_size == (224, 224) and len(model.layers) == 24
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    args = infer_vim_architecture(state)
    assert args == dict(embed_dim=192, depth=24, d_state=16, patch_size=16, stride=16, expand=2, d_conv=4,
                        num_classes=1000, img_size=224)  # fmt: skip
    assert infer_vim_architecture(state, stride=8)["img_size"] == 13 * 8 + 16  # a 14 x 14 grid at stride 8
    bigger = zeromamba.load_official(path, img_size=(288, 320))
    assert bigger.pos_embed.shape == (1, 18 * 20 + 1, 192)


@pytest.mark.parametrize("kind", ["runs code", "other class"])
def test_anything_beyond_namespace_is_refused_and_nothing_runs(tmp_path: Path, kind: str) -> None:
    state, _ = vim_release("tiny", seed=7)
    marker = tmp_path / "created-by-unpickling"
    extra = _Touch(marker) if kind == "runs code" else datetime.date(2024, 1, 1)
    buf = io.BytesIO()
    torch.save({"model": state, "epoch": 3, "args": extra}, buf)
    path = tmp_path / "release.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="refuses") as e:
        zeromamba.load_official(path)
    assert ("io.open" if kind == "runs code" else "datetime") in str(e.value)  # the refused global, named
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        read_official_state_dict(path)
    assert not marker.exists()


def test_non_square_release_needs_its_size(vim_fixtures: Path) -> None:
    path = vim_fixtures / "vim_stride8" / "vim_official_format.pth"
    with pytest.raises(CheckpointError, match="pass img_size"):
        zeromamba.load_official(path)
    model = zeromamba.load_official(path, img_size=(48, 80), stride=8)
    assert model.patch_embed.grid_size == (5, 9)
    with pytest.raises(CheckpointError, match="shape mismatch|does not fit"):
        zeromamba.load_official(path, img_size=(48, 80), stride=8, d_state=16)  # the file has d_state 4
