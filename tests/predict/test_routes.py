"""One answer on every route: the shipped model's predictor built each documented way gives the same
scores on the same images (small objects, transparency, EXIF rotation included), because every way
reads the model's own preprocessing; and timm's own transform of its ``pretrained_cfg`` builds the same
input tensors, except for the object framing, which timm has no step for."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import zeromamba
from zeromamba.images import ImageTransform
from zeromamba.predictor import Predictor

from ..route_images import write_route_images


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_route_images(tmp_path_factory.mktemp("route-images"))


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return zeromamba.from_pretrained("shapes-zsl")


def _scores(predictor: Predictor, images: list[Path]) -> torch.Tensor:
    """``(images, classes, 2)``: raw and calibrated score of every class, in class order."""
    out = torch.zeros(len(images), predictor.num_classes, 2)
    for i, r in enumerate(predictor.classify(images, top_k=None)):
        out[i, r.indices, 0] = torch.tensor(r.scores)
        out[i, r.indices, 1] = torch.tensor(r.calibrated)
    return out


def test_every_way_to_build_the_predictor_gives_the_same_scores(shipped, images, fakehub, tmp_path: Path) -> None:
    classes = dict(
        class_attributes=shipped.class_attributes,
        class_names=shipped.class_names,
        seen=shipped.seen,
        gamma=shipped.gamma,
        attribute_names=shipped.attribute_names,
    )
    saved = Path(shipped.save_pretrained(tmp_path / "saved"))
    fakehub.publish("testorg/shapes-zsl-copy", saved)
    routes = {
        "Predictor(zeromamba.create_model(tag))": Predictor(
            zeromamba.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True), **classes
        ),
        "Predictor(timm.create_model(tag))": Predictor(
            timm.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True), **classes
        ),
        "Predictor(load_model(zoo name))": Predictor(zeromamba.load_model("shapes-zsl"), **classes),
        "from_pretrained(saved folder)": zeromamba.from_pretrained(saved),
        "Predictor(load_model(saved folder))": Predictor(zeromamba.load_model(saved), **classes),
        "from_pretrained(hf-hub repo)": zeromamba.from_pretrained("hf-hub:testorg/shapes-zsl-copy"),
        "Predictor(timm.create_model(hf-hub repo))": Predictor(
            timm.create_model("hf-hub:testorg/shapes-zsl-copy", pretrained=True), **classes
        ),
    }
    assert shipped.preprocess["crop_mode"] == "border" and shipped.preprocess["object_extent"] is not None
    want = _scores(shipped, images)
    for name, predictor in routes.items():
        assert predictor.preprocess == shipped.preprocess, name
        assert predictor.class_names == shipped.class_names and predictor.gamma == shipped.gamma, name
        got = _scores(predictor, images)
        assert torch.equal(got, want), f"{name}: scores differ by up to {float((got - want).abs().max()):.3g}"
    # the images exercise the framing: without it the small objects' inputs (and answers) change
    plain = ImageTransform({**shipped.preprocess, "object_extent": None})
    small = [p for p in images if p.name.startswith(("small_", "photo_"))]
    assert all(not torch.equal(plain(p), shipped.transform(p)) for p in small)
    # and the model saved as it was loaded says what it is
    config = zeromamba.format.read_config(saved)
    assert config["dataset"] == "shapes" and config["trained_by"].startswith("the zeromamba project")
    assert config["variant"]["name"] == "shapes-zsl" and config["variant"]["measured_metrics"]


def test_a_preprocess_argument_overrides_only_the_keys_it_names(shipped) -> None:
    model = shipped.model
    own = Predictor(model).preprocess
    assert own == shipped.preprocess
    bigger = Predictor(model, preprocess={"input_size": 96}).preprocess
    assert bigger == {**own, "input_size": (3, 96, 96)}
    assert Predictor(model, preprocess={"object_extent": None}).preprocess["object_extent"] is None
    # a model without a pretrained_cfg: the authors' 448 x 448 resize
    bare = zeromamba.ZeroMamba(num_attributes=10, embed_dim=8, depths=(1, 1, 1, 1), semantic_dim=8)
    assert Predictor(bare).preprocess["input_size"] == (3, 448, 448)
    assert Predictor(bare).preprocess["crop_mode"] == "squash"


def test_timms_own_transform_builds_the_same_input_except_the_framing(shipped, images) -> None:
    model = timm.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True)
    config = timm.data.resolve_data_config(model=model)
    assert config["crop_mode"] == "border"
    timm_transform = timm.data.create_transform(**config)
    plain = ImageTransform({**shipped.preprocess, "object_extent": None})
    framed = 0
    for path in images:
        ours = shipped.transform(path)
        # timm reads the file as Image.open(path).convert("RGB"): the same pixels for plain RGB files
        from PIL import Image

        with Image.open(path) as im:
            if im.mode != "RGB" or im.getexif().get(0x0112, 1) != 1:
                continue
            theirs = timm_transform(im.convert("RGB"))
        assert torch.equal(theirs, plain(path)), path.name
        framed += not torch.equal(ours, theirs)
    assert framed >= 6  # the small objects: the one step timm's transform does not have


@pytest.mark.parametrize(
    "mode, size, crop_pct, interpolation",
    [
        ("border", (80, 80), 1.0, "bilinear"),
        ("border", (64, 96), 0.9, "bicubic"),
        ("squash", (72, 72), 0.875, "bilinear"),
        ("center", (72, 72), 0.875, "bicubic"),
        ("center", (64, 96), 0.95, "bilinear"),
    ],
)
def test_timms_crop_modes_are_ours(images, mode: str, size: tuple[int, int], crop_pct: float, interpolation: str):
    """``squash``, ``center`` and ``border`` mean what they mean in timm: the same tensors, bit for bit."""
    from PIL import Image

    config = dict(
        input_size=(3, *size),
        crop_mode=mode,
        crop_pct=crop_pct,
        interpolation=interpolation,
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.3),
    )
    theirs = timm.data.create_transform(**config)
    ours = ImageTransform(config)
    for path in images[:12]:  # RGB drawings of many sizes and aspect ratios
        with Image.open(path) as im:
            assert torch.equal(ours(path), theirs(im.convert("RGB"))), (path.name, config)
