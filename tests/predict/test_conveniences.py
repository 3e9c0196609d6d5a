"""What users of timm / open_clip / HF pipelines reach for: ``predictor.to``, calling the predictor,
its ``transform`` in their own DataLoader, ``batch_size=``, streaming with unreadable images
skipped; ``explain(target=...)`` without zero contributions; and every factory's clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch.utils.data import DataLoader

import zeromamba
from zeromamba.errors import (
    AttributeMatrixError,
    ConfigError,
    DeviceError,
    ImageError,
    ModelNotAvailableError,
    UnknownModelError,
)
from zeromamba.results import ImageFailure

CLASSES = ["cat", "dog", "fox", "owl"]
ATTRS = [f"attr_{i}" for i in range(6)]


@pytest.fixture
def predictor(tiny_predictor):  # noqa: ANN001, ANN201
    return tiny_predictor(CLASSES, ATTRS, input_size=32)


@pytest.fixture
def paths(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(5):
        path = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, size=(30 + 3 * i, 40, 3), dtype=np.uint8)).save(path)
        out.append(str(path))
    return out


class _Files(torch.utils.data.Dataset):
    def __init__(self, files: list[str], transform) -> None:  # noqa: ANN001
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.files[i]) as img:
            return self.transform(img.convert("RGB"))


def test_call_to_and_batch_size(predictor, paths: list[str]) -> None:
    reference = predictor.classify(paths, top_k=None)
    called = predictor(paths, top_k=None)
    assert [r.indices for r in called] == [r.indices for r in reference]
    one_at_a_time = predictor.classify(paths, top_k=None, batch_size=1)
    for a, b in zip(one_at_a_time, reference):
        assert a.indices == b.indices and a.scores == pytest.approx(b.scores, abs=1e-5)
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        predictor.classify(paths, batch_size=0)
    assert predictor.to(dtype=torch.float64) is predictor
    assert predictor.dtype == torch.float64 and next(predictor.model.parameters()).dtype == torch.float64
    again = predictor.to("cpu", "float32")(paths, top_k=None)
    assert next(predictor.model.parameters()).dtype == torch.float32
    assert [r.indices for r in again] == [r.indices for r in reference]


def test_devices_that_are_not_here_are_one_clear_error(predictor) -> None:
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    with pytest.raises(DeviceError, match="not available|does not exist"):
        predictor.to(missing)
    with pytest.raises(DeviceError, match="unknown device 'gpu'"):
        predictor.to("gpu")
    with pytest.raises(DeviceError):
        zeromamba.Predictor(predictor.model, device=missing)
    with pytest.raises(DeviceError):
        zeromamba.from_pretrained("shapes-zsl", device=missing)
    assert predictor.device == torch.device("cpu")  # a refused move leaves the predictor as it was


def test_transform_is_the_preprocessing_and_works_in_a_dataloader(predictor, paths: list[str]) -> None:
    transform = predictor.transform
    assert "size=(32, 32)" in repr(transform)
    restored = pickle.loads(pickle.dumps(transform))  # worker processes receive it pickled
    with Image.open(paths[0]) as img:
        x = restored(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    loader = DataLoader(_Files(paths, transform), batch_size=2, num_workers=1)
    batch_results = [r for batch in loader for r in predictor.classify(batch, top_k=None)]
    for a, b in zip(batch_results, predictor.classify(paths, top_k=None)):
        assert a.indices == b.indices and a.scores == pytest.approx(b.scores, abs=1e-5)


def test_classify_iter_streams_and_skips_unreadable_images(predictor, paths: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    inputs = [paths[0], str(broken), *paths[1:], str(tmp_path / "missing.png")]
    with pytest.raises(ImageError, match="broken.png is not an image"):
        predictor.classify(inputs)
    reference = predictor.classify(paths, top_k=2)
    # the arguments and the classes are checked when it is called, before any image is read
    with pytest.raises(ValueError, match="top_k"):
        predictor.classify_iter(inputs, top_k=0)
    with pytest.raises(AttributeMatrixError, match="not found"):
        predictor.classify_iter(inputs, attributes=tmp_path / "no.csv")
    for workers in (0, 2):
        items = list(predictor.classify_iter(inputs, top_k=2, batch_size=2, num_workers=workers, skip_errors=True))
        assert [type(i).__name__ for i in items] == ["ClassificationResult", "ImageFailure"] + [
            "ClassificationResult"
        ] * 4 + ["ImageFailure"]
        failures = [i for i in items if isinstance(i, ImageFailure)]
        assert failures[0].source == str(broken) and "not an image" in failures[0].reason
        assert "not found" in failures[1].reason and failures[1].to_record()["error"] == failures[1].reason
        results = [i for i in items if not isinstance(i, ImageFailure)]
        assert [r.source for r in results] == paths
        assert all(a.indices == b.indices for a, b in zip(results, reference))


def test_explain_target_and_zero_contributions(no_network: None) -> None:
    shapes = zeromamba.from_pretrained("shapes-zsl")
    image = Image.new("RGB", (64, 64), "white")
    explanation = shapes.explain(image, top_k=6)
    # a shapes class has three attributes (a colour, a fill, a shape); the other seven contribute 0
    contributions = [a["contribution"] for a in explanation.to_dict()["attributes"]]
    assert 0 < len(contributions) <= 3 and all(c != 0 for c in contributions)
    named = shapes.explain(image, target="red solid circle")
    assert named.to_dict()["class"]["name"] == "red solid circle"
    with pytest.warns(FutureWarning, match="target"):
        old = shapes.explain(image, classes_or_attributes="red solid circle")
    assert old.to_dict()["attributes"] == named.to_dict()["attributes"]
    with pytest.raises(TypeError, match="unexpected keyword"):
        shapes.explain(image, tagret="red")


def test_every_factory_names_unknown_models(no_network: None, tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="Did you mean zeromamba_small"):
        zeromamba.create_model("zeromamba_smal")
    with pytest.raises(UnknownModelError, match="unknown pretrained tag 'zeromamba_small.cub_gszl'.*cub_gzsl"):
        zeromamba.create_model("zeromamba_small.cub_gszl")
    with pytest.raises(UnknownModelError, match="Did you mean 'shapes-zsl'"):
        zeromamba.from_pretrained("shapes-zls")
    for name in ("./no_such_dir/", str(tmp_path / "nothing"), "a/b/c"):
        with pytest.raises(ModelNotAvailableError, match="model folder not found"):
            zeromamba.load_model(name)
    with pytest.raises(ModelNotAvailableError, match="drop the slash: 'cub-gzsl'"):
        zeromamba.from_pretrained("cub-gzsl/")
    with pytest.raises(RuntimeError):  # timm's own error for names it does not know
        timm.create_model("zeromamba_smal")


def test_the_package_namespace_is_its_api() -> None:
    assert dir(zeromamba) == sorted(zeromamba.__all__)
    for name in zeromamba.__all__:
        assert getattr(zeromamba, name) is not None
    namespace: dict = {}
    exec("from zeromamba import *", namespace)  # noqa: S102
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(zeromamba.__all__)
    for leaked in ("timm", "nn", "fnmatch", "Any", "annotations", "torch"):
        assert leaked not in zeromamba.__all__ and leaked not in dir(zeromamba)
    with pytest.raises(AttributeError, match="has no attribute 'Predicter'"):
        zeromamba.Predicter  # noqa: B018
