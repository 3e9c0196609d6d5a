"""Predictor: classify against own and given classes, GZSL calibration, results, bad input, threads."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from zeromamba import Predictor
from zeromamba.errors import AttributeMatrixError, ConfigError, ImageError, ZeroMambaError
from zeromamba.models import ZeroMamba, calibrated_stacking, class_scores
from zeromamba.predictor import AttributePrediction, ClassificationResult, ResultList, load_class_attributes

A = 6
ATTR_NAMES = [f"has_part::{c}" for c in "abcdef"]
CLASS_NAMES = ["cardinal", "blue_jay", "crow", "wren", "gull"]


@pytest.fixture(scope="module")
def model() -> ZeroMamba:
    torch.manual_seed(0)
    return ZeroMamba(num_attributes=A, semantic_dim=8, embed_dim=8, depths=(1, 1, 1, 1)).eval()


@pytest.fixture(scope="module")
def matrix() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.05, 1.0, size=(5, A))


@pytest.fixture(scope="module")
def predictor(model, matrix) -> Predictor:
    return Predictor(
        model,
        class_attributes=matrix,
        class_names=CLASS_NAMES,
        seen=[0, 1, 2],
        gamma=0.3,
        attribute_names=ATTR_NAMES,
        preprocess={"input_size": (3, 64, 64)},
        batch_size=4,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list:
    """Different images in different forms."""
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("imgs")
    out = []
    for i in range(3):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, size=(40 + 8 * i, 56, 3), dtype=np.uint8)).save(path)
        out.append(str(path))
    out.append(Image.fromarray(rng.integers(0, 255, size=(70, 50), dtype=np.uint8)))
    out.append(rng.uniform(0, 1, size=(33, 47, 3)).astype(np.float32))
    return out


def _model_attributes(predictor: Predictor, images: list) -> torch.Tensor:
    """The model's attribute predictions, computed by hand from the prepared tensors."""
    x = torch.stack([p.tensor for p in predictor._prepare(images)])
    with torch.no_grad():
        return predictor.model(x).attributes


def test_constructor_state(predictor, matrix):
    assert predictor.model.training is False
    assert predictor.class_names == CLASS_NAMES and predictor.attribute_names == ATTR_NAMES
    assert predictor.class_attributes.shape == (5, A) and predictor.class_attributes.dtype == torch.float32
    # rows are L2-normalised, like xlsa17's att
    assert torch.allclose(predictor.class_attributes.norm(dim=1), torch.ones(5))
    expected = torch.from_numpy(matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).float()
    assert torch.allclose(predictor.class_attributes, expected)
    assert predictor.seen.tolist() == [True, True, True, False, False]
    assert predictor.gamma == 0.3 and predictor.num_classes == 5
    assert predictor.preprocess["input_size"] == (3, 64, 64) and predictor.preprocess["crop_mode"] == "squash"
    assert "ZeroMamba" in repr(predictor)


def test_seen_mask_and_indices_agree(model, matrix):
    a = Predictor(model, class_attributes=matrix, seen=[True, True, False, False, False])
    b = Predictor(model, class_attributes=matrix, seen=torch.tensor([0, 1]))
    c = Predictor(model, class_attributes=matrix, class_names=CLASS_NAMES, seen=["cardinal", "blue_jay"])
    assert a.seen.tolist() == b.seen.tolist() == c.seen.tolist() == [True, True, False, False, False]


def test_classify_single_and_list(predictor, images):
    single = predictor.classify(images[0])
    assert isinstance(single, ClassificationResult)
    many = predictor.classify(images)
    assert isinstance(many, ResultList) and isinstance(many, list) and len(many) == len(images)
    assert many[0].indices == single.indices  # (scores differ in the last bits between batch sizes)
    assert many[0].scores == pytest.approx(single.scores, abs=1e-5)
    assert single.source == images[0] and many[3].source == "image 3"
    assert single.top_k == 5 and sorted(single.indices) == list(range(5))
    assert single.name == single.label == CLASS_NAMES[single.index]
    assert predictor.classify([]) == []


def test_scores_and_gzsl_calibration_by_hand(predictor, images):
    results = predictor.classify(images, top_k=None)
    attrs = _model_attributes(predictor, images)
    scores = class_scores(attrs, predictor.class_attributes)
    calibrated = calibrated_stacking(scores, predictor.seen, 0.3)
    for r, s, c in zip(results, scores, calibrated):
        assert r.gamma == 0.3 and r.num_classes == 5
        assert r.indices == torch.argsort(c, descending=True, stable=True).tolist()
        assert r.scores == pytest.approx(s[r.indices].tolist(), abs=1e-5)
        assert r.probabilities == pytest.approx(torch.softmax(s, -1)[r.indices].tolist(), abs=1e-6)
        assert r.calibrated == pytest.approx(c[r.indices].tolist(), abs=1e-6)
        assert r.seen == [i < 3 for i in r.indices]


def test_gamma_zero_or_no_seen_means_plain_ranking(predictor, images):
    attrs = _model_attributes(predictor, images[:2])
    scores = class_scores(attrs, predictor.class_attributes)
    for r in (predictor.classify(images[:2], gamma=0.0), predictor.classify(images[:2], seen=[])):
        for res, s in zip(r, scores):
            assert res.gamma is None and res.calibrated is None
            assert res.indices[:5] == torch.argsort(s, descending=True, stable=True)[:5].tolist()
    # a huge gamma pushes every seen class below every unseen one
    top = predictor.classify(images[0], gamma=5.0, top_k=None)
    assert top.seen == [False, False, True, True, True]


def test_top_k(predictor, images):
    assert predictor.classify(images[0], top_k=2).top_k == 2
    assert predictor.classify(images[0], top_k=50).top_k == 5  # clamped to the classes
    assert predictor.classify(images[0], top_k=None).top_k == 5
    with pytest.raises(ValueError):
        predictor.classify(images[0], top_k=0)


def test_batching_gives_the_same_results(model, matrix, images):
    kwargs = dict(class_attributes=matrix, preprocess={"input_size": (3, 64, 64)})
    small = Predictor(model, batch_size=2, **kwargs).classify(images, top_k=None)
    big = Predictor(model, batch_size=16, **kwargs).classify(images, top_k=None)
    for a, b in zip(small, big):
        assert a.indices == b.indices
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_every_matrix_form_gives_the_same_result(predictor, matrix, images, tmp_path):
    ref = predictor.classify(images[:2], attributes=matrix, class_names=CLASS_NAMES, top_k=None)
    assert ref[0].gamma is None  # given classes: no seen classes unless asked
    csv_path = tmp_path / "classes.csv"
    header = "class," + ",".join(ATTR_NAMES)
    csv_path.write_text(
        "\n".join([header, *(f"{n}," + ",".join(repr(float(v)) for v in row) for n, row in zip(CLASS_NAMES, matrix))])
    )
    npy_path = tmp_path / "classes.npy"
    np.save(npy_path, matrix)
    forms = {
        "tensor": dict(attributes=torch.from_numpy(matrix), class_names=CLASS_NAMES),
        "list": dict(attributes=matrix.tolist(), class_names=CLASS_NAMES),
        "dict": dict(attributes=dict(zip(CLASS_NAMES, matrix))),
        "csv": dict(attributes=str(csv_path)),
        "npy": dict(attributes=npy_path, class_names=CLASS_NAMES),
        "scaled rows": dict(attributes=matrix * np.arange(1, 6)[:, None] * 10, class_names=CLASS_NAMES),
    }
    for name, kwargs in forms.items():
        got = predictor.classify(images[:2], top_k=None, **kwargs)
        for a, b in zip(got, ref):
            assert a.names == b.names, name
            assert a.scores == pytest.approx(b.scores, abs=1e-5), name
    # the predictor's own classes without calibration are the same classes
    own = predictor.classify(images[:2], top_k=None, gamma=0.0)
    assert [r.names for r in own] == [r.names for r in ref]


def test_csv_variants(predictor, matrix, tmp_path):
    # columns named like the model's attributes are matched by name
    order = [3, 0, 5, 1, 4, 2]
    path = tmp_path / "shuffled.csv"
    lines = ["name;" + ";".join(ATTR_NAMES[i] for i in order)]
    lines += [f"{n};" + ";".join(str(row[i]) for i in order) for n, row in zip(CLASS_NAMES, matrix)]
    path.write_text("# a comment\n" + "\n".join(lines) + "\n\n")
    got, names = load_class_attributes(path, A, attribute_names=ATTR_NAMES)
    assert names == CLASS_NAMES
    assert torch.allclose(got, predictor.class_attributes, atol=1e-6)
    # no header: the first column is still the class name
    bare = tmp_path / "bare.tsv"
    bare.write_text("\n".join(f"{n}\t" + "\t".join(str(v) for v in row) for n, row in zip(CLASS_NAMES, matrix)))
    got, names = load_class_attributes(bare, A)
    assert names == CLASS_NAMES and torch.allclose(got, predictor.class_attributes, atol=1e-6)
    # class names from a file override the CSV's
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join(f"c{i}" for i in range(5)) + "\n")
    assert load_class_attributes(bare, A, class_names=names_file)[1] == [f"c{i}" for i in range(5)]


def test_results_print_and_round_trip(predictor, images):
    r = predictor.classify(images[0], top_k=3)
    text = str(r)
    assert "ranked by calibrated = prob - 0.3 x seen" in text and r.names[0] in text and "seen" in text
    assert len(text.splitlines()) == 3 + 3 + r.low_confidence  # (a note line under a low-confidence table)
    # the column that ranks comes right after the class, and is sorted in the table
    header = text.splitlines()[1].split()
    assert header[:6] == ["rank", "class", "index", "calibrated", "prob", "score"]
    column = [float(line.split()[3]) for line in text.splitlines()[3:6]]
    assert column == sorted(column, reverse=True) and r.ranked_by == "calibrated"
    data = json.loads(r.to_json())
    assert data == r.to_dict()
    assert ClassificationResult.from_dict(data) == r
    many = predictor.classify(images[:2], top_k=2)
    assert json.loads(many.to_json()) == many.to_dict() == {"results": [x.to_dict() for x in many]}
    assert str(many).count("rank  class") == 2
    plain = predictor.classify(images[0], attributes=np.eye(A)[:3], top_k=2)
    assert "ranked by score, uncalibrated" in str(plain) and plain.names == [f"class {i}" for i in plain.indices]
    assert str(plain).splitlines()[1].split()[:5] == ["rank", "class", "index", "score", "prob"]
    assert plain.ranked_by == "score"


def test_predict_attributes(predictor, images):
    single = predictor.predict_attributes(images[1])
    assert isinstance(single, AttributePrediction)
    assert single.attribute_names == ATTR_NAMES
    expected = _model_attributes(predictor, [images[1]])[0]
    assert single.values == pytest.approx(expected.tolist(), abs=1e-5)
    assert single.as_dict()[ATTR_NAMES[0]] == single.values[0]
    assert single.top(2)[0][1] == max(single.values)
    assert single.numpy().shape == (A,)
    assert AttributePrediction.from_dict(json.loads(single.to_json())) == single
    assert ATTR_NAMES[int(np.argmax(single.values))] in str(single)
    many = predictor.predict_attributes(images)
    assert len(many) == len(images) and many[1].values == pytest.approx(single.values, abs=1e-5)
    assert set(many.to_dict()) == {"results"}


# --- bad input -----------------------------------------------------------------------------------------


def test_bad_class_attribute_matrices(predictor, matrix, tmp_path):
    bad_rows = matrix.copy()
    bad_rows[1, 2] = np.nan
    inf_rows = matrix.copy()
    inf_rows[0, 0] = np.inf
    zero_row = matrix.copy()
    zero_row[4] = 0
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,1,2,3,4,5,6\nb,1,2,3\n")
    words = tmp_path / "words.csv"
    words.write_text("a,1,2,3,4,5,6\nb,1,2,3,4,5,x\n")
    cases = {
        "too few columns": (dict(attributes=matrix[:, :4]), "4 columns but the model predicts 6"),
        "transposed": (dict(attributes=np.ones((A, 5))), "transposed"),
        "nan": (dict(attributes=bad_rows), "NaN or inf"),
        "inf": (dict(attributes=inf_rows), "NaN or inf"),
        "no rows": (dict(attributes=np.zeros((0, A))), "no rows"),
        "empty dict": (dict(attributes={}), "empty"),
        "1-D": (dict(attributes=np.ones(A)), "2-D"),
        "all-zero row": (dict(attributes=zero_row), "all zeros"),
        "names mismatch": (dict(attributes=matrix, class_names=["a", "b"]), "2 class names for 5 rows"),
        "ragged dict": (dict(attributes={"a": [1.0] * A, "b": [1.0] * 3}), "different lengths"),
        "missing file": (dict(attributes=str(tmp_path / "none.csv")), "not found"),
        "ragged csv": (dict(attributes=ragged), "row 2"),
        "words csv": (dict(attributes=words), "not a number"),
        "seen wrong length": (dict(attributes=matrix, seen=[True, False]), "one boolean per class"),
        "seen out of range": (dict(attributes=matrix, seen=[7]), "0..4"),
        "own names mismatch": (dict(class_names=["a"]), "1 class names for 5 classes"),
    }
    for name, (kwargs, match) in cases.items():
        with pytest.raises(AttributeMatrixError, match=match) as info:
            predictor.classify(np.zeros((8, 8), np.uint8), **kwargs)
        assert isinstance(info.value, (ZeroMambaError, ValueError)), name


def test_bad_constructor_arguments(model, matrix):
    with pytest.raises(AttributeMatrixError, match="columns"):
        Predictor(model, class_attributes=matrix[:, :3])
    with pytest.raises(AttributeMatrixError, match="class names"):
        Predictor(model, class_attributes=matrix, class_names=["x"])
    with pytest.raises(AttributeMatrixError, match="attribute names"):
        Predictor(model, attribute_names=["x"])
    with pytest.raises(AttributeMatrixError, match="one boolean per class"):
        Predictor(model, class_attributes=matrix, seen=np.ones(4, bool))
    with pytest.raises(AttributeMatrixError, match="no classes"):
        Predictor(model, seen=[0])
    with pytest.raises(ConfigError, match="gamma"):
        Predictor(model, gamma=float("nan"))
    with pytest.raises(ConfigError, match="dtype"):
        Predictor(model, dtype="int4")
    with pytest.raises(ConfigError, match="batch_size"):
        Predictor(model, batch_size=0)
    with pytest.raises(TypeError):
        Predictor("not a model")


def test_no_classes_of_its_own(model, matrix):
    bare = Predictor(model, preprocess={"input_size": (3, 64, 64)})
    with pytest.raises(AttributeMatrixError, match="no classes of its own"):
        bare.classify(np.zeros((8, 8), np.uint8))
    assert bare.classify(np.zeros((8, 8), np.uint8), attributes=matrix).num_classes == 5


def test_bad_image_in_a_list_names_it(predictor, images, tmp_path):
    with pytest.raises(ImageError, match="not found"):
        predictor.classify([images[0], str(tmp_path / "missing.jpg")])
    with pytest.raises(ImageError, match="pixel limit"):
        limited = Predictor(predictor.model, preprocess=predictor.preprocess)
        limited.max_pixels = 100
        limited.predict_attributes(images[0])


# --- other models, devices ---------------------------------------------------------------------------


def test_plain_classifier_ranks_logits():
    import timm

    torch.manual_seed(0)
    backbone = timm.create_model("vmamba_tiny", embed_dim=8, depths=(1, 1, 1, 1), num_classes=4)
    p = Predictor(backbone, class_names=list("wxyz"), preprocess={"input_size": (3, 64, 64)})
    r = p.classify(np.zeros((20, 20, 3), np.uint8), top_k=2)
    with torch.no_grad():
        logits = backbone(p._prepare([np.zeros((20, 20, 3), np.uint8)])[0].tensor[None])[0]
    assert r.indices == torch.argsort(logits, descending=True)[:2].tolist() and r.names[0] in "wxyz"
    with pytest.raises(ConfigError):
        p.predict_attributes(np.zeros((8, 8), np.uint8))
    with pytest.raises(AttributeMatrixError):
        p.classify(np.zeros((8, 8), np.uint8), attributes=np.ones((2, 3)))


def test_bfloat16_on_cpu_runs_with_bfloat16_weights(model, matrix, images):
    import copy

    ref = Predictor(model, class_attributes=matrix, preprocess={"input_size": (3, 64, 64)}).classify(images, top_k=None)
    low = Predictor(
        copy.deepcopy(model), class_attributes=matrix, preprocess={"input_size": (3, 64, 64)}, dtype="bfloat16"
    )
    # oneDNN's bfloat16 kernels need bfloat16 weights; autocast would convert them on every call
    assert low.dtype == torch.bfloat16 and {p.dtype for p in low.model.parameters()} == {torch.bfloat16}
    for a, b in zip(low.classify(images, top_k=None), ref):
        assert a.scores == pytest.approx([b.scores[b.indices.index(i)] for i in a.indices], abs=0.05)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda(model, matrix, images, dtype):
    cpu = Predictor(model, class_attributes=matrix, preprocess={"input_size": (3, 64, 64)}, device="cpu")
    ref = cpu.classify(images, top_k=None)
    import copy

    gpu = Predictor(
        copy.deepcopy(model),
        class_attributes=matrix,
        preprocess={"input_size": (3, 64, 64)},
        device="cuda",
        dtype=dtype,
    )
    assert gpu.dtype == dtype and next(gpu.model.parameters()).is_cuda
    got = gpu.classify(images, top_k=None)
    tol = 1e-3 if dtype == torch.float32 else 0.1
    for a, b in zip(got, ref):
        assert a.scores == pytest.approx([b.scores[b.indices.index(i)] for i in a.indices], abs=tol)
    e = gpu.explain(images[0])
    assert e.maps.dtype == np.float32 and np.isfinite(e.maps).all() and len(e) > 0
    # threads on the GPU too
    want = [r.indices for r in got]
    outs: list = []

    def work() -> None:
        outs.append([r.indices for r in gpu.classify(images, top_k=None)])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outs == [want] * 8


# --- threads -------------------------------------------------------------------------------------------


def test_eight_threads_equal_sequential(predictor, images):
    inputs = [images[i % len(images)] for i in range(8)]
    sequential = [
        predictor.classify([x, images[(i + 1) % len(images)]], top_k=None).to_dict() for i, x in enumerate(inputs)
    ]
    results: list = [None] * 8
    errors: list = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                got = predictor.classify([inputs[i], images[(i + 1) % len(images)]], top_k=None).to_dict()
                if results[i] is None:
                    results[i] = got
                assert got == results[i]
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, want in zip(results, sequential):
        assert [r["indices"] for r in got["results"]] == [r["indices"] for r in want["results"]]
        for g, w in zip(got["results"], want["results"]):
            assert g["scores"] == pytest.approx(w["scores"], abs=1e-5)
