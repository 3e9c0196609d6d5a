"""A miniature dataset in the xlsa17 layout (shared by the training, evaluation and distributed
tests) and the data-loading tests, bad input included."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from zeromamba.data import (
    build_transform,
    cell_strings,
    load_attribute_embeddings,
    load_dataset,
    load_folder,
    load_mat,
    load_xlsa17,
    reroot_paths,
    selection_splits,
)
from zeromamba.errors import DataError

from ..mini_xlsa17 import EMB_DIM, NUM_ATTR, NUM_CLASSES, PER_CLASS, SEEN, TRAIN_CLASSES, mat_cell


def test_xlsa17_loads_and_reroots(mini_xlsa17: dict[str, Path]) -> None:
    data = load_xlsa17(mini_xlsa17["data_root"], mini_xlsa17["image_root"], "MINI")
    assert data.num_classes == NUM_CLASSES and data.num_attributes == NUM_ATTR
    assert data.class_names[0] == "001.Class_0"
    assert all(os.path.isfile(p) for p in data.image_paths)
    assert data.image_paths[0] == os.path.join(
        str(mini_xlsa17["image_root"]), "CUB_200_2011/images/001.Class_0/img_0_0.jpg"
    )
    assert data.labels.min() == 0 and data.labels.max() == NUM_CLASSES - 1  # 1-based on disk
    assert list(data.seen_classes) == list(SEEN) and list(data.unseen_classes) == [6, 7]
    assert torch.allclose(data.class_attributes.norm(dim=1), torch.ones(NUM_CLASSES))
    assert set(data.splits) == {"trainval", "test_seen", "test_unseen", "train", "val"}
    # the authors' rule (6 parts for CUB) gives the same paths; a regex too
    same = load_xlsa17(mini_xlsa17["mat_dir"], mini_xlsa17["image_root"], "MINI", path_rule=6)
    assert same.image_paths == data.image_paths
    rx = load_xlsa17(mini_xlsa17["data_root"], mini_xlsa17["image_root"], "MINI", path_rule=r"/data/CUB_200_2011/(.*)$")
    assert rx.image_paths == data.image_paths
    # pointing image_root one level deeper also resolves (the probe finds 'images/...')
    deeper = load_xlsa17(mini_xlsa17["data_root"], mini_xlsa17["image_root"] / "CUB_200_2011", "MINI")
    assert deeper.image_paths == data.image_paths


def test_selection_splits_never_touch_test(mini_xlsa17: dict[str, Path]) -> None:
    data = load_xlsa17(mini_xlsa17["data_root"], mini_xlsa17["image_root"], "MINI")
    sel = selection_splits(data, 0.34, seed=0)
    test = set(data.splits["test_seen"]) | set(data.splits["test_unseen"])
    for part in (sel.train, sel.val_seen, sel.val_unseen):
        assert not set(part) & test
    assert list(sel.seen) == list(TRAIN_CLASSES) and list(sel.unseen) == [4, 5]
    assert not set(sel.train) & set(sel.val_seen)
    assert len(sel.val_seen) == len(TRAIN_CLASSES)  # one of each class's three non-test images


def test_transforms_resize_without_crop() -> None:
    img = Image.new("RGB", (50, 20), (255, 0, 0))
    x = build_transform(32, train=False)(img)
    assert x.shape == (3, 32, 32)
    assert torch.allclose(x[0], torch.full((32, 32), (1 - 0.485) / 0.229), atol=1e-4)
    assert build_transform(32, train=True)(img).shape == (3, 32, 32)


def test_embeddings_formats(mini_xlsa17: dict[str, Path], tmp_path: Path) -> None:
    emb = load_attribute_embeddings(mini_xlsa17["embeddings"], NUM_ATTR)
    assert emb.shape == (NUM_ATTR, EMB_DIM)
    from safetensors.torch import save_file

    save_file({"embeddings": emb}, str(tmp_path / "e.safetensors"))
    assert torch.equal(load_attribute_embeddings(tmp_path / "e.safetensors"), emb)
    with pytest.raises(DataError, match="pickle"):
        load_attribute_embeddings(mini_xlsa17["pickle"], NUM_ATTR)
    with pytest.warns(UserWarning, match="unpickling"):
        assert torch.equal(load_attribute_embeddings(mini_xlsa17["pickle"], NUM_ATTR, allow_pickle=True), emb)
    with pytest.raises(DataError, match="5 attributes"):
        load_attribute_embeddings(mini_xlsa17["embeddings"], 5)
    with pytest.raises(DataError, match="not found"):
        load_attribute_embeddings(tmp_path / "nope.npy")
    np.save(tmp_path / "bad.npy", np.array([1.0, np.nan]))
    with pytest.raises(DataError, match="2-D"):
        load_attribute_embeddings(tmp_path / "bad.npy")


# --- bad input ---------------------------------------------------------------------------------


def _copy_mini(mini_xlsa17: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    import shutil

    shutil.copytree(mini_xlsa17["mat_dir"], tmp_path / "MINI")
    return {"mat_dir": tmp_path / "MINI", "image_root": mini_xlsa17["image_root"]}


def _rewrite(path: Path, **changes: object) -> None:
    mat = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    for k, v in changes.items():
        if v is None:
            mat.pop(k)
        else:
            mat[k] = v
    scipy.io.savemat(path, mat)


def test_missing_files(mini_xlsa17: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="res101.mat not found"):
        load_xlsa17(tmp_path, mini_xlsa17["image_root"], "MINI")
    d = _copy_mini(mini_xlsa17, tmp_path)
    os.remove(d["mat_dir"] / "att_splits.mat")
    with pytest.raises(DataError, match="att_splits.mat"):
        load_xlsa17(d["mat_dir"], mini_xlsa17["image_root"], "MINI")
    with pytest.raises(DataError, match="image folder not found"):
        load_xlsa17(mini_xlsa17["data_root"], tmp_path / "nowhere", "MINI")


def test_unreadable_mat(mini_xlsa17: dict[str, Path], tmp_path: Path) -> None:
    d = _copy_mini(mini_xlsa17, tmp_path)
    (d["mat_dir"] / "res101.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="res101.mat"):
        load_xlsa17(d["mat_dir"], mini_xlsa17["image_root"], "MINI")


def test_inconsistent_shapes(mini_xlsa17: dict[str, Path], tmp_path: Path) -> None:
    d = _copy_mini(mini_xlsa17, tmp_path)
    att_path = d["mat_dir"] / "att_splits.mat"
    _rewrite(att_path, att=np.ones((NUM_ATTR, NUM_CLASSES - 2)))  # labels reach class 8
    with pytest.raises(DataError, match="att_splits.mat.*|labels range"):
        load_xlsa17(d["mat_dir"], mini_xlsa17["image_root"], "MINI")
    d2 = _copy_mini(mini_xlsa17, tmp_path / "b")
    _rewrite(d2["mat_dir"] / "att_splits.mat", test_unseen_loc=np.array([[1], [999]]))
    with pytest.raises(DataError, match="test_unseen_loc.*outside"):
        load_xlsa17(d2["mat_dir"], mini_xlsa17["image_root"], "MINI")
    d3 = _copy_mini(mini_xlsa17, tmp_path / "c")
    _rewrite(d3["mat_dir"] / "att_splits.mat", trainval_loc=None)
    with pytest.raises(DataError, match="lacks the variable.*trainval_loc"):
        load_xlsa17(d3["mat_dir"], mini_xlsa17["image_root"], "MINI")
    # a known dataset name with the wrong matrix size names the file
    (tmp_path / "d").mkdir()
    d4 = _copy_mini(mini_xlsa17, tmp_path / "d")
    os.rename(d4["mat_dir"], tmp_path / "d" / "CUB")
    with pytest.raises(DataError, match="CUB has 312 attributes"):
        load_xlsa17(tmp_path / "d", mini_xlsa17["image_root"], "CUB")


def test_missing_images_are_reported(mini_xlsa17: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    images = tmp_path / "images"
    shutil.copytree(mini_xlsa17["image_root"], images)
    gone = sorted((images / "CUB_200_2011" / "images" / "003.Class_2").iterdir())
    for p in gone:
        p.unlink()
    with pytest.raises(DataError) as e:
        load_xlsa17(mini_xlsa17["data_root"], images, "MINI")
    msg = str(e.value)
    assert f"{len(gone)} of {NUM_CLASSES * PER_CLASS} images" in msg and "img_2_0.jpg" in msg
    assert "res101.mat" in msg


def test_mat_reader(tmp_path: Path) -> None:
    path = tmp_path / "m.mat"
    scipy.io.savemat(path, {"names": mat_cell(["a b", "", "c"]), "rows": np.array(["ab ", "cde"]), "x": np.eye(2)})
    mat = load_mat(path, ["names"], ["rows", "absent"])
    assert set(k for k in mat if not k.startswith("__")) == {"names", "rows"}  # only what was asked for
    assert cell_strings(mat["names"], path, "names") == ["a b", "", "c"]
    assert cell_strings(mat["rows"], path, "rows") == ["ab", "cde"]  # a char matrix: padded rows
    with pytest.raises(DataError, match="m.mat.*'x' is not a cell array of strings"):
        cell_strings(load_mat(path)["x"], path, "x")
    with pytest.raises(DataError, match="att_splits.mat .*m.mat.*lacks the variable.*att"):
        load_mat(path, ["att"], what="att_splits.mat")
    with pytest.raises(DataError, match="not found.*none.mat"):
        load_mat(tmp_path / "none.mat")
    (tmp_path / "bad.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="cannot read .*bad.mat"):
        load_mat(tmp_path / "bad.mat")


def test_unresolvable_paths(mini_xlsa17: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot locate the images"):
        load_xlsa17(mini_xlsa17["data_root"], tmp_path / "empty", "MINI")
    with pytest.raises(DataError, match="does not match"):
        load_xlsa17(mini_xlsa17["data_root"], mini_xlsa17["image_root"], "MINI", path_rule=r"/nothing/here/")
    with pytest.raises(DataError, match="missing"):  # a wrong explicit rule: every image missing
        load_xlsa17(mini_xlsa17["data_root"], mini_xlsa17["image_root"], "MINI", path_rule=3)
    with pytest.raises(DataError, match="non-negative"):
        reroot_paths(["/a/b.jpg"], mini_xlsa17["image_root"], rule=-1)


# --- own data: image folder per class + CSV + unseen list -----------------------------------------


def build_folder_dataset(root: Path, classes: int = 5, per_class: int = 3) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    lines = ["class,has stripes,is big,lives in water"]
    for c in range(classes):
        d = root / "images" / f"animal{c}"
        d.mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(d / f"{j}.png")
        lines.append(f"animal{c}," + ",".join(f"{v:.3f}" for v in rng.random(3)))
    (root / "attributes.csv").write_text("\n".join(lines) + "\n")
    (root / "unseen.txt").write_text("# held out\nanimal3\nanimal4\n")
    return {"image_root": root / "images", "csv": root / "attributes.csv", "unseen": root / "unseen.txt"}


def test_folder_format(tmp_path: Path) -> None:
    f = build_folder_dataset(tmp_path)
    data = load_dataset("folder", f["image_root"], attributes_csv=f["csv"], unseen_classes=f["unseen"])
    assert data.attribute_names == ["has stripes", "is big", "lives in water"]
    assert data.class_names == [f"animal{c}" for c in range(5)]
    assert list(data.unseen_classes) == [3, 4] and list(data.seen_classes) == [0, 1, 2]
    assert len(data.splits["test_seen"]) == 3 and len(data.splits["trainval"]) == 6
    assert len(data.splits["test_unseen"]) == 6
    sel = selection_splits(data, 0.34)
    assert len(sel.unseen) == 1 and not set(sel.seen) & set(sel.unseen)
    again = load_folder(f["image_root"], f["csv"], f["unseen"])
    assert all(np.array_equal(again.splits[k], data.splits[k]) for k in data.splits)  # fixed seed


def test_folder_bad_input(tmp_path: Path) -> None:
    f = build_folder_dataset(tmp_path)
    with pytest.raises(DataError, match="attributes_csv"):
        load_dataset("folder", f["image_root"])
    with pytest.raises(DataError, match="not found"):
        load_folder(f["image_root"], tmp_path / "none.csv", f["unseen"])
    bad = tmp_path / "bad.csv"
    bad.write_text("class,a,b\nanimal0,1,2\nanimal1,1\n")
    with pytest.raises(DataError, match="bad.csv.*row 3"):
        load_folder(f["image_root"], bad, f["unseen"])
    (tmp_path / "u2.txt").write_text("zebra\n")
    with pytest.raises(DataError, match="u2.txt.*zebra"):
        load_folder(f["image_root"], f["csv"], tmp_path / "u2.txt")
    (f["image_root"] / "stray").mkdir()
    with pytest.raises(DataError, match="stray"):
        load_folder(f["image_root"], f["csv"], f["unseen"])
    (f["image_root"] / "stray").rmdir()
    for p in (f["image_root"] / "animal1").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="no images.*animal1"):
        load_folder(f["image_root"], f["csv"], f["unseen"])
