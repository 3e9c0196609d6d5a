"""Converting the authors' checkpoints: the official-format fixtures go through convert ->
save_pretrained -> from_pretrained and reproduce the official outputs and predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import zeromamba
from zeromamba import convert
from zeromamba import format as zm_format
from zeromamba.cli import main as cli_main
from zeromamba.errors import CheckpointError, DataError
from zeromamba.models import VMamba, ZeroMamba

from ..helpers import REPO, fixtures_root

scipy_io = pytest.importorskip("scipy.io")

FIXTURES = fixtures_root("official")


def write_xlsa17(folder: Path, class_attributes: torch.Tensor, seen: list[int]) -> tuple[Path, Path]:
    """A tiny att_splits.mat + res101.mat in the xlsa17 layout (att is A x C, indices 1-based)."""
    c = class_attributes.shape[0]
    names = np.empty((c, 1), dtype=object)
    for i in range(c):
        names[i, 0] = np.array([f"{i + 1:03d}.species_{i}"])
    # two images per class; trainval = the images of the seen classes (test_seen gets one of each)
    labels = np.repeat(np.arange(1, c + 1), 2).reshape(-1, 1).astype(np.float64)
    trainval = [2 * k + 1 for k in seen]
    test_seen = [2 * k + 2 for k in seen]
    test_unseen = [2 * k + 1 for k in range(c) if k not in seen]
    att_splits = folder / "att_splits.mat"
    res101 = folder / "res101.mat"
    scipy_io.savemat(
        att_splits,
        {
            "att": class_attributes.numpy().T.astype(np.float64),
            "original_att": class_attributes.numpy().T.astype(np.float64) * 100,
            "allclasses_names": names,
            "trainval_loc": np.array(trainval, dtype=np.float64).reshape(-1, 1),
            "test_seen_loc": np.array(test_seen, dtype=np.float64).reshape(-1, 1),
            "test_unseen_loc": np.array(test_unseen, dtype=np.float64).reshape(-1, 1),
        },
    )
    scipy_io.savemat(res101, {"labels": labels, "features": np.zeros((4, labels.shape[0]))})
    return att_splits, res101


@pytest.mark.parametrize("fixture", ["parity_dstate1", "parity_dstate4"])
def test_fixtures_convert_save_load_reproduce_the_official_outputs(fixture: str, tmp_path: Path) -> None:
    folder = FIXTURES / fixture
    meta = json.loads((folder / "meta.json").read_text())
    expected = load_file(str(folder / "expected.safetensors"))
    att = expected["class_attributes"]
    seen = meta["seen_classes"]
    att_splits, res101 = write_xlsa17(tmp_path, att, seen)
    ckpt = folder / "zeromamba_official_format.pth"

    converted = convert.convert_official(
        ckpt, tmp_path / "converted", att_splits=att_splits, res101=res101, gamma=meta["gamma"], dataset="fixture"
    )
    config = zm_format.read_config(converted)
    assert config["seen_classes"] == seen == [0, 1, 2, 3]
    assert config["class_names"][0] == "001.species_0"
    assert config["gamma"] == pytest.approx(0.3)
    first = zeromamba.from_pretrained(converted)
    # the predictor writes the same format back, and that loads again
    second = zeromamba.from_pretrained(first.save_pretrained(tmp_path / "resaved"))

    official = zeromamba.load_official(ckpt)
    assert set(second.model.state_dict()) == set(official.state_dict())
    for k, v in official.state_dict().items():
        assert torch.equal(second.model.state_dict()[k], v), k
    assert torch.allclose(second.class_attributes, att, atol=1e-6)  # xlsa17 att rows are unit-norm already
    assert second.seen.tolist() == [i in seen for i in range(att.shape[0])]

    unseen = [i for i in range(att.shape[0]) if i not in seen]
    for spec in meta["inputs"]:
        key = spec["key"]
        x = expected[key]
        with torch.no_grad():
            assert torch.equal(second.model(x).attributes, official(x).attributes)
        fused = expected[f"{key}.fused_attr"]
        pred = second.predict_attributes(x)  # float tensors are taken as preprocessed input
        pred = torch.tensor([p.values for p in pred])
        assert (pred - fused).abs().max() <= 1e-4 * fused.abs().max()
        gzsl = second.classify(x, top_k=1)  # own classes, calibrated stacking with gamma 0.3
        assert [r.indices[0] for r in gzsl] == expected[f"{key}.gzsl_pred"].tolist()
        czsl = second.classify(x, attributes=att[unseen], top_k=1)
        assert [unseen[r.indices[0]] for r in czsl] == expected[f"{key}.czsl_pred"].tolist()


def test_vmamba_release_file_becomes_a_backbone_folder(tmp_path: Path) -> None:
    import timm

    ckpt = FIXTURES / "parity_dstate1" / "vmamba_official_format.pth"
    out = convert.convert_official(ckpt, tmp_path / "backbone")
    config = zm_format.read_config(out)
    assert config["architecture"] == "vmamba_small"  # a custom size keeps the name and overrides its args
    assert config["model_args"]["embed_dim"] == 24 and config["model_args"]["depths"] == [1, 1, 2, 1]
    assert config["pretrained_cfg"]["input_size"] == [3, 224, 224]
    official = zeromamba.load_official(ckpt)
    model = zeromamba.load_model(out)
    assert isinstance(model, VMamba)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), official(x))
        assert torch.equal(timm.create_model(f"local-dir:{out}", pretrained=True).eval()(x), official(x))
    predictor = zeromamba.from_pretrained(out)  # a backbone predictor ranks its ImageNet logits
    assert len(predictor.classify(x, top_k=3)[0].indices) == 3
    with pytest.raises(DataError, match="VMamba backbone"):
        convert.convert_official(ckpt, tmp_path / "x", seen_classes=[0])
    with pytest.raises(CheckpointError, match="is a VMamba backbone checkpoint, but variant 'cub-gzsl'"):
        convert.convert_official(ckpt, tmp_path / "x", variant="cub-gzsl")


def test_convert_names_files_explicit_seen_and_checks(tmp_path: Path) -> None:
    folder = FIXTURES / "parity_dstate1"
    ckpt = folder / "zeromamba_official_format.pth"
    att = load_file(str(folder / "expected.safetensors"))["class_attributes"]
    att_splits, res101 = write_xlsa17(tmp_path, att, [0, 1, 2, 3])
    (tmp_path / "classes.txt").write_text("\n".join(f"bird {i}" for i in range(6)) + "\n")
    # CUB's attributes.txt style: "<index> <name>"
    (tmp_path / "attributes.txt").write_text("".join(f"{i + 1} has_part::{i}\n" for i in range(12)))
    out = convert.convert_official(
        ckpt,
        tmp_path / "named",
        att_splits=att_splits,
        seen_classes=[True, True, False, False, False, True],
        class_names=tmp_path / "classes.txt",
        attribute_names=tmp_path / "attributes.txt",
    )
    p = zeromamba.from_pretrained(out)
    assert p.class_names[5] == "bird 5" and p.attribute_names[0] == "has_part::0"
    assert p.seen.tolist() == [True, True, False, False, False, True]
    assert p.gamma == 0.0  # no variant, no gamma given

    with pytest.raises(DataError, match="seen classes are unknown"):
        convert.convert_official(ckpt, tmp_path / "x", att_splits=att_splits)
    with pytest.raises(DataError, match="only used together with att_splits"):
        convert.convert_official(ckpt, tmp_path / "x", res101=res101)
    (tmp_path / "w").mkdir()
    wrong_width, _ = write_xlsa17(tmp_path / "w", torch.rand(6, 10), [0, 1])
    with pytest.raises(DataError, match="10 columns but the model predicts 12"):
        convert.convert_official(ckpt, tmp_path / "x", att_splits=wrong_width, seen_classes=[0])
    with pytest.raises(DataError, match="not found"):
        convert.convert_official(ckpt, tmp_path / "x", att_splits=tmp_path / "missing.mat", seen_classes=[0])
    with pytest.raises(DataError, match="5 class names for 6 rows"):
        convert.convert_official(ckpt, tmp_path / "x", att_splits=att_splits, res101=res101, class_names=["a"] * 5)
    with pytest.raises(CheckpointError, match="does not match variant 'cub-gzsl'"):
        convert.convert_official(ckpt, tmp_path / "x", variant="cub-gzsl", att_splits=att_splits, res101=res101)
    with pytest.raises(CheckpointError, match="not found"):
        convert.convert_official(tmp_path / "nope.pth", tmp_path / "x")
    assert not (tmp_path / "x").exists()  # failed conversions write nothing


def test_cli_convert_and_push_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = FIXTURES / "parity_dstate1"
    att = load_file(str(folder / "expected.safetensors"))["class_attributes"]
    att_splits, res101 = write_xlsa17(tmp_path, att, [0, 1, 2, 3])
    out = tmp_path / "cli"
    code = cli_main(
        [
            "convert",
            str(folder / "zeromamba_official_format.pth"),
            "--out",
            str(out),
            "--att-splits",
            str(att_splits),
            "--res101",
            str(res101),
            "--gamma",
            "0.3",
        ]
    )
    assert code == 0 and "config.json" in capsys.readouterr().out
    assert isinstance(zeromamba.load_model(out), ZeroMamba)
    code = cli_main(
        ["convert", str(folder / "zeromamba_official_format.pth"), "--out", str(tmp_path / "y"), "--seen", "0,1"]
    )
    assert code == 1 and "without a class-attribute matrix" in capsys.readouterr().err
    assert cli_main(["convert", str(folder / "zeromamba_official_format.pth"), "--out", str(tmp_path / "y")]) == 0
    assert zm_format.read_config(tmp_path / "y")["class_attributes"] is None  # a model that predicts attributes only
    capsys.readouterr()

    # push validates the folder before any network access
    (out / "model.safetensors").write_bytes(b"garbage")
    assert cli_main(["push", str(out), "me/model"]) == 1
    assert "not a valid safetensors file" in capsys.readouterr().err
    assert cli_main(["push", str(tmp_path / "missing"), "me/model"]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_publishing_script_converts_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from zeromamba import zoo

    folder = FIXTURES / "parity_dstate1"
    meta = json.loads((folder / "meta.json").read_text())
    (tmp_path / "xlsa17" / "FIX").mkdir(parents=True)
    write_xlsa17(
        tmp_path / "xlsa17" / "FIX", load_file(str(folder / "expected.safetensors"))["class_attributes"], [0, 1, 2, 3]
    )
    variant = zoo.PretrainedVariant(
        name="fix-gzsl",
        architecture="zeromamba_small",
        timm_tag="fix_gzsl",
        repo_name="zeromamba-fix-gzsl",
        model_args=dict(embed_dim=24, depths=(1, 1, 2, 1), num_attributes=12, semantic_dim=32),
        task="gzsl",
        dataset="FIX",
        gamma=meta["gamma"],
        num_classes=6,
        num_attributes=12,
        num_seen=4,
        source_file="zeromamba_official_format.pth",
    )
    monkeypatch.setitem(zoo._REGISTRY, "fix-gzsl", variant)
    spec = importlib.util.spec_from_file_location("publish_zoo", REPO / "hub" / "publish_zoo.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--checkpoints", str(folder), "--xlsa17", str(tmp_path / "xlsa17"), "--out", str(tmp_path / "zoo")]
    assert script.main([*args, "--variants", "fix-gzsl,vmamba-small"]) == 0  # vmamba-small: file absent, skipped
    out = tmp_path / "zoo" / "fix-gzsl"
    config = zm_format.read_config(out)
    assert config["variant"]["name"] == "fix-gzsl" and config["gamma"] == 0.3 and config["seen_classes"] == [0, 1, 2, 3]
    assert "# ZeroMamba fix-gzsl" in (out / "README.md").read_text()
    assert not (tmp_path / "zoo" / "vmamba-small").exists()
