"""A short training run of the shipped configuration from scratch: the training code still learns."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import zeromamba
from zeromamba.train import train

from ..helpers import REPO

TRAIN_CONFIG = REPO / "examples" / "shapes_zsl.json"


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
