"""The generated Shapes dataset: determinism, the seen/unseen split, the data-layer hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zeromamba.data import build_transform, load_dataset, selection_splits
from zeromamba.data.shapes import COLOURS, FILLS, SHAPES, SHAPES_ATTRIBUTES, load_shapes
from zeromamba.errors import DataError


@pytest.fixture(scope="module")
def data():
    return load_shapes(seed=0)


def _pixels(data, indices) -> list[np.ndarray]:
    return [np.asarray(data.render(int(i))) for i in indices]


def test_same_seed_same_images_other_seed_other_images() -> None:
    a, b, c = load_shapes(seed=7), load_shapes(seed=7), load_shapes(seed=8)
    idx = [0, 5, 901, len(a.labels) - 1]
    for x, y in zip(_pixels(a, idx), _pixels(b, idx)):
        assert x.ndim == 3 and x.shape[2] == 3 and x.dtype == np.uint8 and 64 <= max(x.shape) <= 160
        assert np.array_equal(x, y)
    # the order of reading does not matter (one generator per image)
    assert np.array_equal(_pixels(a, [901])[0], _pixels(load_shapes(seed=7), [901])[0])
    assert all(not np.array_equal(x, y) for x, y in zip(_pixels(a, idx), _pixels(c, idx)))
    # the classes, labels and splits do not depend on the seed
    assert a.class_names == c.class_names and np.array_equal(a.labels, c.labels)
    assert all(np.array_equal(a.splits[k], c.splits[k]) for k in a.splits)


def test_classes_and_attributes_read_well(data) -> None:
    assert data.num_classes == len(COLOURS) * len(FILLS) * len(SHAPES) == 36
    assert data.attribute_names == list(SHAPES_ATTRIBUTES) and data.num_attributes == 10
    assert "red striped triangle" in data.class_names
    i = data.class_names.index("red striped triangle")
    row = data.class_attributes[i]
    on = {data.attribute_names[k] for k in torch.nonzero(row).flatten().tolist()}
    assert on == {"red", "striped", "triangle"}
    assert torch.allclose(data.class_attributes.norm(dim=1), torch.ones(36))
    assert len({tuple(r.tolist()) for r in data.class_attributes}) == 36  # every class is distinct


def test_split_covers_every_attribute_value_and_keeps_unseen_out_of_training(data) -> None:
    seen, unseen = data.seen_classes, data.unseen_classes
    assert len(seen) == 27 and len(unseen) == 9 and not np.intersect1d(seen, unseen).size
    present = (data.class_attributes > 0).numpy()
    # every attribute value occurs in some seen class, and in some class of the model-selection train split
    assert present[seen].sum(0).min() >= 1
    # each unseen class is new only as a triple: each of its attribute pairs occurs in some seen class
    for u in unseen:
        on = np.nonzero(present[u])[0]
        for a, b in ((on[0], on[1]), (on[0], on[2]), (on[1], on[2])):
            assert (present[seen][:, a] & present[seen][:, b]).any(), (data.class_names[u], a, b)
    # three unseen classes per shape and per fill
    assert present[unseen][:, :3].sum(0).tolist() == [3, 3, 3] and present[unseen][:, 7:].sum(0).tolist() == [3, 3, 3]
    sel = selection_splits(data, 0.1, 0)
    assert present[sel.seen].sum(0).min() >= 1
    assert len(sel.unseen) == 6 and not np.intersect1d(sel.unseen, unseen).size
    # no image of an unseen class in any split used for training or model selection
    for split in ("trainval", "train", "val", "test_seen"):
        assert not np.isin(data.labels[data.splits[split]], unseen).any(), split
    for part in (sel.train, sel.val_seen, sel.val_unseen):
        assert not np.isin(data.labels[part], unseen).any()
    assert set(data.labels[data.splits["test_unseen"]]) == set(unseen.tolist())
    # test images are held out from the training images
    assert not np.intersect1d(data.splits["trainval"], data.splits["test_seen"]).size


def test_load_dataset_hook_and_image_dataset(data) -> None:
    loaded = load_dataset("shapes", None)  # no folders needed
    assert loaded.class_names == data.class_names and loaded.extra["seed"] == 0
    other = load_dataset("shapes:123", None, data_root=None)
    assert other.extra["seed"] == 123 and other.source == "generated shapes (seed 123)"
    with pytest.raises(DataError, match="shapes:<integer seed>"):
        load_dataset("shapes:abc", None)
    with pytest.raises(DataError, match="no image folder"):  # other datasets still need their folders
        load_dataset("CUB", None)
    idx = data.splits["test_unseen"][:4]
    ds = data.dataset(idx, build_transform(64))
    x, y, pos = ds[2]
    assert x.shape == (3, 64, 64) and y == int(data.labels[idx[2]]) and pos == 2
    assert torch.equal(x, build_transform(64)(data.render(int(idx[2]))))
    # the border and letterbox transforms are the predictor's preprocessing of those names
    from zeromamba.images import preprocess_image
    from zeromamba.preprocess_config import resolve_preprocess

    for mode in ("border", "letterbox"):
        boxed = data.dataset(idx, build_transform(80, crop_mode=mode))[2][0]
        same, _ = preprocess_image(data.render(int(idx[2])), resolve_preprocess({"input_size": 80, "crop_mode": mode}))
        assert boxed.shape == (3, 80, 80) and torch.allclose(boxed, same, atol=1e-5)
    with pytest.raises(ValueError, match="crop_mode"):
        build_transform(80, crop_mode="center")


def test_plain_renderer_of_the_first_demo_model() -> None:
    """The first renderer (``shapes_plain``, what the shipped ``zeromamba_nano`` learnt from): square
    64 px images, the same for the same generator, the object's pixels in its colour under its mask."""
    from zeromamba.data.shapes_plain import PLAIN_RGB, draw_plain_sample

    for k, colour in enumerate(COLOURS):
        sample = draw_plain_sample(colour, "solid", SHAPES[k % 3], np.random.default_rng([9, k]))
        again = draw_plain_sample(colour, "solid", SHAPES[k % 3], np.random.default_rng([9, k]))
        assert sample.image.size == (64, 64) and sample.mask.shape == (64, 64)
        assert np.array_equal(np.asarray(sample.image), np.asarray(again.image))
        pixels = np.asarray(sample.image, dtype=np.float32)
        inside = pixels[sample.mask].mean(0)
        assert np.abs(inside - np.asarray(PLAIN_RGB[colour])).max() < 40  # jitter 25, noise, edges
        assert 0.05 < sample.mask.mean() < 0.5 and np.abs(pixels[~sample.mask].mean(0) - inside).max() > 40
    spread = {}
    for fill in FILLS:  # the marks of a pattern spread the object's pixel values; a solid fill does not
        sample = draw_plain_sample("red", fill, "circle", np.random.default_rng(3))
        spread[fill] = np.asarray(sample.image, dtype=np.float32)[sample.mask][:, 0].std()
    assert min(spread["striped"], spread["dotted"]) > 3 * spread["solid"]


def _paper_share(data, indices) -> float:
    """The share of images whose background (the median border pixel) is a clearly coloured paper."""
    import colorsys

    count = 0
    for img in _pixels(data, indices):
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]).astype(np.float32) / 255.0
        _, s, v = colorsys.rgb_to_hsv(*np.median(border, axis=0))
        count += s > 0.25 and v > 0.7
    return count / len(indices)


def test_the_wide_variety_widens_backgrounds_and_keeps_classes_and_splits() -> None:
    standard, wide = load_shapes(seed=3), load_shapes(seed=3, variety="wide")
    assert standard.extra["variety"] == "standard" and wide.extra["variety"] == "wide"
    assert np.array_equal(standard.labels, wide.labels) and standard.class_names == wide.class_names
    assert all(np.array_equal(standard.splits[k], wide.splits[k]) for k in standard.splits)
    idx = list(range(0, len(wide.labels), len(wide.labels) // 80))
    # standard backgrounds are light or grey (saturation under 0.2 when light); a quarter of the wide
    # variety's are coloured paper
    assert _paper_share(standard, idx) == 0.0
    assert _paper_share(wide, idx) > 0.08
    again = load_shapes(seed=3, variety="wide")
    assert all(np.array_equal(x, y) for x, y in zip(_pixels(wide, idx[:5]), _pixels(again, idx[:5])))
    with pytest.raises(DataError, match="unknown variety 'plain'"):
        load_shapes(variety="plain")
    with pytest.raises(DataError, match="shapes_variety is for the shapes dataset"):
        load_dataset("CUB", shapes_variety="wide")


def test_the_uneven_variety_paints_a_third_of_bodies_unevenly() -> None:
    from scipy import ndimage

    from zeromamba.data.shapes_draw import VARIETIES, draw_sample

    assert VARIETIES == ("standard", "wide", "uneven")
    wide, uneven = load_shapes(seed=3, variety="wide"), load_shapes(seed=3, variety="uneven")
    assert np.array_equal(wide.labels, uneven.labels) and all(
        np.array_equal(wide.splits[k], uneven.splits[k]) for k in wide.splits
    )

    def body_spread(variety: str, seed: int) -> float:
        # the colour spread inside a solid object (edges left out): a third of uneven bodies are blotchy
        sample = draw_sample("blue", "solid", "circle", np.random.default_rng(seed), variety)
        inside = ndimage.binary_erosion(sample.mask, iterations=3)
        return float(np.asarray(sample.image, np.float32)[inside].std(0).mean())

    blotchy = [body_spread("uneven", s) > 2 * body_spread("wide", s) for s in range(1000, 1060)]
    assert 0.15 <= np.mean(blotchy) <= 0.55


def test_standard_is_the_default_drawing() -> None:
    from zeromamba.data.shapes_draw import draw_sample, draw_swatch

    a = draw_sample("red", "dotted", "bar", np.random.default_rng(5))
    b = draw_sample("red", "dotted", "bar", np.random.default_rng(5), "standard")
    c = draw_sample("red", "dotted", "bar", np.random.default_rng(5), "wide")
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))
    swatch = draw_swatch("striped", np.random.default_rng(5), "wide")
    assert swatch.fill == "striped" and swatch.mask.any()
    with pytest.raises(ValueError, match="unknown variety"):
        draw_sample("red", "dotted", "bar", np.random.default_rng(5), "plain")
