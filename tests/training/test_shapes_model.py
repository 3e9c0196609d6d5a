"""The embedded ``shapes-zsl`` model: offline loading, its accuracy on a fresh test set, and a short
training run from scratch that shows the training code still learns."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

import zeromamba
from zeromamba import zoo
from zeromamba.data.shapes import load_shapes
from zeromamba.evaluate import evaluate
from zeromamba.train import train

from ..helpers import REPO, block_network

TRAIN_CONFIG = REPO / "examples" / "shapes_zsl.json"
# a seed used neither for training (0) nor by the demo (2025)
FRESH_SEED = 4242


def test_embedded_weights_ship_with_the_package() -> None:
    variant = zoo.get_variant("shapes-zsl")
    folder = variant.local_path()
    assert variant.is_local and folder is not None and folder.is_dir()
    assert folder.parent.parent == Path(zeromamba.__file__).resolve().parent
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "class_attributes.safetensors"} <= files
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 8 * 2**20  # a few MB
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["gamma"] == pytest.approx(variant.gamma) and cfg["dataset"] == "shapes"
    assert cfg["architecture"] == variant.architecture == "zeromamba_nano"
    assert {k: cfg["model_args"][k] for k in ("embed_dim", "depths", "num_attributes")} == {
        "embed_dim": variant.model_args["embed_dim"],
        "depths": list(variant.model_args["depths"]),
        "num_attributes": 10,
    }


# Issue 5's acceptance floors, and regression floors at the shipped model's measured level less a
# margin for platform differences (measured on seed 4242: CZSL 100%, H 98.5%; see MODEL_CARD.md).
ISSUE_CZSL, ISSUE_H = 0.85, 0.75
SHIPPED_CZSL, SHIPPED_H = 0.97, 0.95


@pytest.fixture(scope="module")
def fresh_metrics():
    mp = pytest.MonkeyPatch()
    try:
        block_network(mp)
        predictor = zeromamba.from_pretrained("shapes-zsl")
        data = load_shapes(seed=FRESH_SEED)  # other images than the training run's (seed 0)
        result = evaluate(predictor, data, split="test", device="cpu", batch_size=128, progress=False)
    finally:
        mp.undo()
    return predictor, data, result


def test_shipped_model_offline_on_a_fresh_test_set(fresh_metrics) -> None:
    predictor, data, result = fresh_metrics
    assert predictor.num_classes == 36 and int(predictor.seen.sum()) == 27
    assert predictor.preprocess["input_size"] == (3, 64, 64)
    assert predictor.class_names == data.class_names
    assert torch.equal(predictor.seen, data.seen_mask())
    m = result.metrics
    print(f"\nshapes-zsl on seed {FRESH_SEED}: CZSL {m.czsl:.4f} U {m.unseen:.4f} S {m.seen:.4f} H {m.harmonic:.4f}")
    assert result.gamma_source == "model" and m.gamma == pytest.approx(predictor.gamma)
    assert result.num_images == 27 * 50 + 9 * 100
    assert m.czsl >= SHIPPED_CZSL  # unseen classes among the unseen classes (chance: 1/9)
    assert m.harmonic >= SHIPPED_H  # GZSL at the model's own gamma, chosen on validation


def test_issue_czsl_floor(fresh_metrics) -> None:
    _, _, result = fresh_metrics
    assert result.metrics.czsl >= ISSUE_CZSL


def test_issue_harmonic_floor(fresh_metrics) -> None:
    _, _, result = fresh_metrics
    assert result.metrics.harmonic >= ISSUE_H


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:init='none'", "ignore:no attribute embeddings")  # both intended here
def test_training_from_scratch_learns(tmp_path: Path) -> None:
    """The shipped configuration, cut to ~150 SGD steps (about a minute on 2 cores).

    Unseen-class accuracy (CZSL over the 9 unseen classes) is 1/9 = 11.1% by chance; on 900
    test images its standard deviation is about 1 point, so 25% cannot happen by luck. A broken
    loss, optimiser, label mapping or data pipeline stays near chance.
    """
    cfg = json.loads(TRAIN_CONFIG.read_text())
    cfg.update(
        output_dir=str(tmp_path / "run"),
        selection="last",  # no validation phase: one short training, then the test split
        epochs=1,
        max_steps_per_epoch=150,
        num_workers=0,
        progress="off",
    )
    t0 = time.perf_counter()
    result = train(cfg)
    took = time.perf_counter() - t0
    print(f"\nshort training: {took:.0f} s, test CZSL {result.test['czsl']:.4f} H {result.test['harmonic']:.4f}")
    assert result.history[0]["steps"] == 150
    assert result.test["czsl"] >= 0.25
    assert zeromamba.from_pretrained(result.model_dir).num_classes == 36
