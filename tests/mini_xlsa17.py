"""A miniature dataset in the xlsa17 layout (two .mat files and tiny images), and a training
configuration for it: what the training, evaluation and distributed tests run on."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

PREFIX = "/BS/xian/work/data/CUB_200_2011/"  # the authors' machine; 6 '/'-parts before CUB_200_2011/images
NUM_CLASSES, PER_CLASS, NUM_ATTR, EMB_DIM = 8, 4, 6, 300
SEEN, TRAIN_CLASSES = range(6), range(4)  # classes 6, 7 unseen; 4, 5 are xlsa17's val classes


def mat_cell(strings: list[str]) -> np.ndarray:
    out = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        out[i, 0] = s
    return out


def _loc(indices: list[int]) -> np.ndarray:
    return (np.asarray(indices, dtype=np.int64) + 1).reshape(-1, 1).astype(np.float64)  # 1-based, as MATLAB


def build_mini_xlsa17(root: Path, size: int = 40, name: str = "MINI") -> dict[str, Path]:
    """Images (PIL), ``res101.mat`` + ``att_splits.mat`` (scipy, the layout loadmat reads back like
    the real files) and a word2vec-like embedding file, under ``root``."""
    rng = np.random.default_rng(0)
    image_root = root / "images"
    files, labels, names = [], [], []
    for c in range(NUM_CLASSES):
        cname = f"{c + 1:03d}.Class_{c}"
        names.append(cname)
        folder = image_root / "CUB_200_2011" / "images" / cname
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, size=3)
        for j in range(PER_CLASS):
            arr = np.clip(base + rng.normal(0, 30, size=(size, size + 4 * j, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / f"img_{c}_{j}.jpg", quality=90)
            files.append(f"{PREFIX}CUB_200_2011/images/{cname}/img_{c}_{j}.jpg")
            labels.append(c + 1)
    idx = np.arange(len(files))
    lab = np.asarray(labels) - 1
    seen_imgs = idx[np.isin(lab, SEEN)]
    test_seen = [i for i in seen_imgs if i % PER_CLASS == 0]
    trainval = [i for i in seen_imgs if i % PER_CLASS != 0]
    mat_dir = root / "xlsa17" / "data" / name
    mat_dir.mkdir(parents=True)
    scipy.io.savemat(
        mat_dir / "res101.mat",
        {
            "image_files": mat_cell(files),
            "labels": np.asarray(labels).reshape(-1, 1),
            "features": rng.random((16, len(files))),
        },
    )
    att = rng.random((NUM_ATTR, NUM_CLASSES))
    att /= np.linalg.norm(att, axis=0, keepdims=True)
    scipy.io.savemat(
        mat_dir / "att_splits.mat",
        {
            "att": att,
            "original_att": att * 100,
            "trainval_loc": _loc(trainval),
            "test_seen_loc": _loc(test_seen),
            "test_unseen_loc": _loc(list(idx[lab >= 6])),
            "train_loc": _loc(list(idx[np.isin(lab, TRAIN_CLASSES)])),
            "val_loc": _loc(list(idx[np.isin(lab, [4, 5])])),
            "allclasses_names": mat_cell(names),
        },
    )
    emb = rng.normal(size=(NUM_ATTR, EMB_DIM)).astype(np.float32)
    np.save(root / "MINI_attribute.npy", emb)
    with open(root / "MINI_attribute.pkl", "wb") as f:
        pickle.dump(emb, f)
    return {
        "data_root": root / "xlsa17" / "data",
        "mat_dir": mat_dir,
        "image_root": image_root,
        "embeddings": root / "MINI_attribute.npy",
        "pickle": root / "MINI_attribute.pkl",
    }


#: the tiny model the mini-set training tests use
MINI_MODEL = {"embed_dim": 8, "depths": [1, 1, 1, 1], "ssm_ratio": 1.0}


def mini_train_config(mini: dict[str, Path], out: Path, **kw: Any) -> dict[str, Any]:
    """A training configuration for the mini xlsa17 set and a tiny model (CPU, 32 px), plus ``kw``."""
    cfg = dict(
        dataset="MINI",
        data_root=str(mini["data_root"]),
        image_root=str(mini["image_root"]),
        embeddings=str(mini["embeddings"]),
        output_dir=str(out),
        init="none",
        model=dict(MINI_MODEL),
        image_size=32,
        batch_size=4,
        epochs=3,
        milestones=[1, 2],
        num_workers=0,
        progress="off",
        device="cpu",  # bit-exact resume checks; CUDA kernels may be non-deterministic
        l1_weight=1.0,
        gamma=0.3,
    )
    cfg.update(kw)
    return cfg
