"""The on-disk format: config.json schema, atomic writes, and every bad input of a local folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

import zeromamba
from zeromamba import format as zm_format
from zeromamba.errors import CheckpointError, ConfigError, DataError, UnknownModelError
from zeromamba.models import ZeroMamba
from zeromamba.predictor import Predictor

from ..helpers import REPO

TINY = dict(
    num_attributes=6, semantic_dim=8, embed_dim=8, depths=(1, 1, 1, 1), fusion_hidden=16, num_imagenet_classes=10
)


@pytest.fixture
def make_predictor(tiny_predictor):  # noqa: ANN001, ANN201
    """``make_predictor(seed)``: the shared tiny predictor with this file's classes and heads."""

    def make(seed: int = 0) -> Predictor:
        classes, attributes = [f"c{i}" for i in range(5)], [f"a{i}" for i in range(6)]
        heads = {k: v for k, v in TINY.items() if k in ("fusion_hidden", "num_imagenet_classes")}
        return tiny_predictor(classes, attributes, input_size=32, seen=(0, 1), gamma=0.25, seed=seed, **heads)

    return make


@pytest.fixture
def saved(make_predictor, tmp_path: Path) -> Path:
    return Path(make_predictor().save_pretrained(tmp_path / "model"))


def test_config_schema_and_round_trip(make_predictor, saved: Path) -> None:
    from timm.models import PretrainedCfg

    assert sorted(p.name for p in saved.iterdir()) == [
        "README.md",
        "class_attributes.safetensors",
        "config.json",
        "model.safetensors",
    ]
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["zeromamba_format"] == zm_format.FORMAT_VERSION == 1
    assert cfg["architecture"] == "zeromamba_small"
    assert cfg["model_args"] == dict(
        embed_dim=8,
        depths=[1, 1, 1, 1],
        d_state=1,
        ssm_ratio=2.0,
        mlp_ratio=4.0,
        ssm_conv_bias=False,
        num_attributes=6,
        semantic_dim=8,
        fusion_hidden=16,
        num_imagenet_classes=10,
    )
    pc = cfg["pretrained_cfg"]
    assert pc["input_size"] == [3, 32, 32] and pc["num_classes"] == 6 and pc["crop_mode"] == "squash"
    PretrainedCfg(**pc)  # timm's hf-hub loader builds exactly this
    assert cfg["class_names"] == [f"c{i}" for i in range(5)]
    assert cfg["attribute_names"] == [f"a{i}" for i in range(6)]
    assert cfg["seen_classes"] == [0, 1] and cfg["gamma"] == 0.25
    assert cfg["class_attributes"]["file"] == "class_attributes.safetensors"
    assert cfg["class_attributes"]["shape"] == [5, 6]
    # the weights file is plain safetensors under our parameter names
    state = safetensors.torch.load_file(str(saved / "model.safetensors"))
    assert set(state) == set(ZeroMamba(**TINY).state_dict())

    original = make_predictor()
    loaded = zeromamba.from_pretrained(saved)
    assert loaded.class_names == original.class_names and loaded.attribute_names == original.attribute_names
    assert torch.equal(loaded.seen, original.seen) and loaded.gamma == original.gamma
    assert torch.allclose(loaded.class_attributes, original.class_attributes)
    assert loaded.preprocess["input_size"] == original.preprocess["input_size"]
    x = torch.randint(0, 256, (3, 37, 45), dtype=torch.uint8)
    a, b = original.classify(x, top_k=None), loaded.classify(x, top_k=None)
    assert a.indices == b.indices and torch.allclose(torch.tensor(a.scores), torch.tensor(b.scores))
    assert not list(saved.glob(".*.tmp"))  # no temporary files left behind


def test_save_a_bare_model_with_overrides(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ZeroMamba(**TINY)
    out = zeromamba.save_pretrained(model, tmp_path / "bare")
    cfg = zm_format.read_config(out)
    assert cfg["class_attributes"] is None and cfg["class_names"] is None and cfg["gamma"] == 0.0
    assert zeromamba.from_pretrained(out).num_classes is None
    out = zeromamba.save_pretrained(model, out, class_attributes=torch.rand(3, 6), seen=[2], gamma=0.5, dataset="toy")
    p = zeromamba.from_pretrained(out)
    assert (
        p.num_classes == 3
        and p.seen.tolist() == [False, False, True]
        and zm_format.read_config(out)["dataset"] == "toy"
    )
    # saving without classes again removes the stale matrix
    zeromamba.save_pretrained(model, out)
    assert not (out / "class_attributes.safetensors").exists()

    bad = [
        (dict(class_attributes=torch.rand(3, 5)), "5 columns but the model predicts 6"),
        (dict(class_attributes=torch.rand(3, 6), class_names=["a"]), "1 class names for 3 rows"),
        (dict(class_attributes=torch.full((2, 6), float("nan"))), "NaN or inf"),
        (dict(class_attributes=torch.rand(0, 6)), "non-empty"),
        (dict(class_attributes=torch.rand(3, 6), seen=[7]), r"must be in 0\.\.2"),
        (dict(seen=[0]), "without a class-attribute matrix"),
        (dict(attribute_names=["x"]), "1 attribute names for a model with 6"),
        (dict(class_attributes=torch.rand(3, 6), gamma=float("inf")), "finite"),
    ]
    for kwargs, message in bad:
        with pytest.raises(DataError, match=message):
            zeromamba.save_pretrained(model, tmp_path / "refused", **kwargs)
    assert not (tmp_path / "refused").exists()


def test_architecture_names_the_model_size(tmp_path: Path) -> None:
    """A nano-sized ZeroMamba is saved as zeromamba_nano (and rebuilt by its explicit arguments);
    other sizes keep the generic zeromamba_small name."""
    nano = zeromamba.create_model("zeromamba_nano", num_attributes=10)
    cfg = zm_format.read_config(zeromamba.save_pretrained(nano, tmp_path / "nano"))
    assert cfg["architecture"] == "zeromamba_nano" and cfg["model_args"]["depths"] == [1, 1, 2, 1]
    loaded = zeromamba.from_pretrained(tmp_path / "nano").model
    assert type(loaded) is ZeroMamba and loaded.state_dict().keys() == nano.state_dict().keys()
    tiny = zeromamba.save_pretrained(ZeroMamba(**TINY), tmp_path / "tiny")
    assert zm_format.read_config(tiny)["architecture"] == "zeromamba_small"


def test_writes_are_atomic(make_predictor, saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {p.name: p.read_bytes() for p in saved.iterdir()}

    def broken_save_file(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        make_predictor(seed=1).save_pretrained(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before  # untouched, no temp files
    monkeypatch.undo()
    zeromamba.from_pretrained(saved)


@pytest.mark.parametrize(
    "version, ok",
    [(1, True), ("1.3", True), (2, False), ("2.0", False), (0, False), ("banana", False)],
)
def test_config_versions(saved: Path, version: object, ok: bool) -> None:
    cfg = json.loads((saved / "config.json").read_text())
    cfg["zeromamba_format"] = version
    (saved / "config.json").write_text(json.dumps(cfg))
    if ok:
        zeromamba.from_pretrained(saved)
        return
    with pytest.raises(ConfigError) as e:
        zeromamba.from_pretrained(saved)
    if version in (2, "2.0"):
        assert "pip install -U zeromamba" in str(e.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.pop("zeromamba_format"), "not written by zeromamba"),
        (lambda c: c.update(architecture="resnet50"), "unknown architecture 'resnet50'"),
        (lambda c: c.update(model_args=[1, 2]), "'model_args' must be an object"),
        (lambda c: c["model_args"].update(bogus=1), "model_args.bogus is not an argument of ZeroMamba"),
        (lambda c: c.update(seen_classes=[0, 9]), "seen_classes must be class indices"),
        (lambda c: c.update(class_names=["only one"]), "class_names must list 5 names"),
        (lambda c: c.update(attribute_names=["x"]), "attribute_names must list one name per attribute"),
    ],
)
def test_malformed_configs(saved: Path, change, message: str) -> None:  # noqa: ANN001
    cfg = json.loads((saved / "config.json").read_text())
    change(cfg)
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=message):
        zeromamba.from_pretrained(saved)


def test_unreadable_config(saved: Path) -> None:
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        zeromamba.from_pretrained(saved)
    (saved / "config.json").unlink()
    with pytest.raises(ConfigError, match="not a zeromamba model folder"):
        zeromamba.from_pretrained(saved)


def test_corrupt_truncated_and_mismatched_weights(saved: Path) -> None:
    weights = (saved / "model.safetensors").read_bytes()
    for data, message in [
        (weights[: len(weights) - 100], "corrupt or truncated"),
        (weights[:8], "corrupt or truncated"),
        (b"", "not a valid safetensors file"),
        (b"PK\x03\x04 a zip/pickle, never unpickled", "not a valid safetensors file"),
    ]:
        (saved / "model.safetensors").write_bytes(data)
        with pytest.raises(CheckpointError, match=message):
            zeromamba.from_pretrained(saved)
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        zeromamba.from_pretrained(saved)
    (saved / "model.safetensors").write_bytes(weights)

    # weights that do not fit the config: every mismatch named
    cfg = json.loads((saved / "config.json").read_text())
    cfg["model_args"]["fusion_hidden"] = 32
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="fusion.mlp.0.weight"):
        zeromamba.from_pretrained(saved)
    cfg["model_args"]["fusion_hidden"] = 16
    (saved / "config.json").write_text(json.dumps(cfg))

    # the class-attribute matrix is checked against its recorded SHA-256
    matrix = saved / "class_attributes.safetensors"
    safetensors.torch.save_file({"class_attributes": torch.zeros(5, 6)}, str(matrix))
    with pytest.raises(CheckpointError, match="SHA-256"):
        zeromamba.from_pretrained(saved)


def test_names_that_are_neither_variants_repos_nor_folders(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="Did you mean 'cub-gzsl'"):
        zeromamba.from_pretrained("cub-gszl")
    with pytest.raises(UnknownModelError, match="Did you mean 'awa2-czsl'"):
        zeromamba.from_pretrained("awa-czsl")
    with pytest.raises(UnknownModelError, match="Known variants: cub-gzsl"):
        zeromamba.from_pretrained("no such thing")
    (tmp_path / "weights.pth").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file"):
        zeromamba.from_pretrained(str(tmp_path / "weights.pth"))
    # UnknownModelError is a KeyError whose message reads cleanly
    with pytest.raises(KeyError):
        zeromamba.from_pretrained("cub-gszl")


def test_model_cards(tmp_path: Path) -> None:
    repo_root = REPO
    assert (repo_root / "hub" / "MODEL_CARD_TEMPLATE.md").read_text() == zm_format.MODEL_CARD_TEMPLATE

    torch.manual_seed(0)
    out = zeromamba.save_pretrained(ZeroMamba(**TINY), tmp_path / "card", variant="cub-gzsl")
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: other" in front and "library_name: zeromamba" in front
    assert "tags:" in front and "datasets:\n- cub-200-2011" in front
    assert "the authors' figures" in card and "| GZSL H (harmonic mean) | 74.2 |" in card
    assert "CUB_bestGZSL.pth" in card and "@inproceedings{hou2025zeromamba" in card
    assert "$" not in card.replace("$$", "")  # every placeholder filled
    cfg = zm_format.read_config(out)
    assert cfg["variant"]["source_file"] == "CUB_bestGZSL.pth" and cfg["gamma"] == 0.3
    assert cfg["pretrained_cfg"]["input_size"] == [3, 448, 448]

    backbone = zeromamba.VMamba(embed_dim=8, depths=(1, 1, 1, 1), ssm_ratio=1.0)
    card = (zeromamba.save_pretrained(backbone, tmp_path / "b", variant="vmamba-tiny") / "README.md").read_text()
    assert "license: mit" in card and "ImageNet-1k top-1 (224x224) | 82.5" in card
    # an existing card is kept unless asked
    (out / "README.md").write_text("mine")
    zeromamba.save_pretrained(ZeroMamba(**TINY), out)
    assert (out / "README.md").read_text() == "mine"
