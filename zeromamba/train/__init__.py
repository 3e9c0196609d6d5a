"""Training ZeroMamba with the paper's recipe, on one process or many (``torchrun``).

Python::

    from zeromamba.train import train

    result = train({"dataset": "CUB", "data_root": "data/xlsa17/data", "image_root": "data/CUB",
                    "embeddings": "w2v/CUB_attribute.npy", "output_dir": "runs/cub"})
    print(result.test["harmonic"], result.model_dir)

Command line: ``zeromamba train --dataset CUB --data-root ... --image-root ... --output runs/cub``,
and the same command under ``torchrun --nproc_per_node 8 -m zeromamba train ...``.

Configuration (:mod:`~zeromamba.train.config`): defaults < the dataset's preset (:data:`PRESETS`)
< a JSON/TOML file (``--config``) < command-line options. Every key is a field of :class:`TrainConfig`.

Model selection (``selection``):

* ``"validation"`` (default): train on xlsa17's ``train`` classes, evaluate each epoch on
  held-out images of those classes + the ``val`` classes (as unseen), pick the epoch and gamma
  there, retrain on ``trainval`` for that many epochs, and evaluate the test split once. No test
  image is used before the final evaluation.
* ``"authors"``: the authors' protocol: evaluate the test split every epoch and keep the best epoch
  (by H at the preset gamma; the best-CZSL epoch is exported too). Reported numbers are then
  selected on the test set, and are labelled so.
* ``"last"``: train ``epochs`` epochs, evaluate the test split once at the preset gamma.

Output folder: ``config.json`` (the resolved configuration), ``log.jsonl`` (one JSON object per
epoch: losses, learning rates, metrics), ``checkpoints/`` (``latest.json`` points at the newest
complete checkpoint; each checkpoint is a folder written under a temporary name and renamed, so an
interrupted run never leaves a half-written one), ``model/`` (the final weights in the zoo format:
``zeromamba.from_pretrained("runs/cub/model")``), ``result.json``, ``test_curve.png``.

Modules: :mod:`~zeromamba.train.config` (settings), :mod:`~zeromamba.train.recipe` (model,
optimiser, loss), :mod:`~zeromamba.train.checkpoints`, :mod:`~zeromamba.train.loop` (one
process's epochs), :mod:`~zeromamba.train.run` (phases, selection, export).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..runtime import setup_distributed
from .config import PRESETS, SELECTION_LABELS, TrainConfig, load_config_file, resolve_config
from .recipe import build_model, compute_loss, group_cross_entropy, make_optimizer, rotate_hue
from .run import Run, TrainResult

__all__ = [
    "PRESETS",
    "SELECTION_LABELS",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "compute_loss",
    "group_cross_entropy",
    "load_config_file",
    "make_optimizer",
    "resolve_config",
    "rotate_hue",
    "train",
]


def train(config: TrainConfig | Mapping[str, Any] | str | os.PathLike) -> TrainResult:
    """Train (and select, and evaluate) a ZeroMamba model; see the module docstring.

    Args:
        config: a :class:`TrainConfig`, a mapping of its fields (the dataset's preset fills the
            rest), or the path of a JSON/TOML file.

    Returns:
        :class:`TrainResult` (identical on every rank under torchrun; only rank 0 writes files).

    Raises:
        DataError: dataset problems; ConfigError: bad settings; TrainingError: a non-finite loss
        (the last good checkpoint is kept) or a run folder already in use without ``resume``;
        CheckpointError: unreadable checkpoints or an ``init`` that does not fit.
    """
    cfg = resolve_config(config)
    env = setup_distributed(cfg.device)
    try:
        return Run(cfg, env).run()
    finally:
        env.close()
