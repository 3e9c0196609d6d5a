"""TorchScript and ExportedProgram files of the shipped model, and the other zoo architectures (VMamba
alone, Vim) through ONNX: loaded back the way a user loads them, against eager."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load_file

import zeromamba
from zeromamba.exporter import TOLERANCE
from zeromamba.models import VMamba, ZeroMambaVim
from zeromamba.predictor import Predictor

from ..helpers import TINY, fixtures_root, scaled_error


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
def test_torch_formats_reproduce_the_predictor(fmt: str, tmp_path: Path) -> None:
    predictor = zeromamba.from_pretrained("shapes-zsl")
    result = zeromamba.export(predictor, tmp_path, format=fmt)
    assert result.model_file.name == {"torchscript": "model.torchscript.pt", "exported-program": "model.pt2"}[fmt]
    assert json.loads(result.preprocess_file.read_text())["model_format"] == fmt
    if fmt == "torchscript":
        module = torch.jit.load(str(result.model_file))
    else:
        with open(result.model_file, "rb") as f:
            module = torch.export.load(f).module()
    for batch in (2, 4):
        x = torch.randn(batch, *predictor.preprocess["input_size"], generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            attributes = module(x)[0]
        want = torch.tensor([p.values for p in predictor.predict_attributes(x)])
        assert scaled_error(attributes, want) < TOLERANCE


@pytest.mark.slow
def test_a_vmamba_classifier_exports_its_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = VMamba(num_classes=10, **TINY).eval()
    result = zeromamba.export(model, tmp_path, input_size=(40, 56))
    assert result.output_names == ["logits"]
    session = ort.InferenceSession(str(result.model_file), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 40, 56)
    with torch.inference_mode():
        want = model(x)
    assert scaled_error(torch.from_numpy(session.run(None, {"images": x.numpy()})[0]), want) < TOLERANCE


@pytest.mark.slow
def test_vim_exports_exactly(tmp_path: Path) -> None:
    # the Vim authors' fixture with overlapping patches and a non-square image
    root = fixtures_root("vim") / "vim_stride8"
    meta = json.loads((root / "meta.json").read_text())["config"]
    size = meta["img_size"]
    model = zeromamba.load_official(
        root / "vim_official_format.pth",
        img_size=tuple(size) if isinstance(size, list) else size,
        stride=meta["stride"],
    )
    expected = load_file(root / "expected.safetensors")
    x = expected["input0"]
    result = zeromamba.export(model, tmp_path, input_size=tuple(x.shape[2:]))
    session = ort.InferenceSession(str(result.model_file), providers=["CPUExecutionProvider"])
    for batch in (x, torch.cat([x, x.flip(0)])):
        got = torch.from_numpy(session.run(None, {"images": batch.numpy()})[0])
        with torch.inference_mode():
            assert scaled_error(got, model(batch)) < TOLERANCE
    assert scaled_error(torch.from_numpy(session.run(None, {"images": x.numpy()})[0]), expected["input0.logits"]) < 1e-4


@pytest.mark.slow
def test_zeromamba_on_vim_exports_its_predictor(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ZeroMambaVim(
        num_attributes=5, semantic_dim=8, img_size=(48, 32), embed_dim=32, depth=2, fusion_hidden=16
    ).eval()
    classes = torch.rand(4, 5)
    predictor = Predictor(model, class_attributes=classes, seen=[0, 1], gamma=0.2, preprocess={"input_size": (48, 32)})
    result = zeromamba.export(predictor, tmp_path)
    assert result.output_names == ["attributes", "class_scores", "calibrated_scores"]
    session = ort.InferenceSession(str(result.model_file), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 48, 32)
    got = session.run(None, {"images": x.numpy()})
    want = torch.tensor([p.values for p in predictor.predict_attributes(x)])
    assert scaled_error(torch.from_numpy(got[0]), want) < TOLERANCE
