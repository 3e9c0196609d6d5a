"""ONNX export as a user runs it: the ``zeromamba export`` command on the shipped model, ONNX Runtime
(CPU execution provider) on the written file, in this process and in a fresh one where zeromamba
cannot be imported, against the predictor's own eager outputs; and the authors' fixture models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load_file

import zeromamba
from zeromamba.errors import ExportError
from zeromamba.exporter import DEFAULT_OPSET, TOLERANCE
from zeromamba.predictor import Predictor
from zeromamba.scoring import calibrated_stacking, class_scores

from ..drawings import draw_test_set
from ..helpers import REPO, fixture_dirs, scaled_error
from ..route_images import write_route_images


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, x: torch.Tensor) -> dict[str, torch.Tensor]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, (torch.from_numpy(a) for a in session.run(None, {"images": x.numpy()}))))


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return zeromamba.from_pretrained("shapes-zsl")


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``zeromamba export shapes-zsl --format onnx --out DIR`` in a subprocess: the folder it wrote."""
    out = tmp_path_factory.mktemp("export") / "shapes-onnx"
    done = subprocess.run(
        [sys.executable, "-m", "zeromamba", "export", "shapes-zsl", "--format", "onnx", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "model.onnx" in done.stdout and "largest scaled difference from eager" in done.stdout
    return out


def _images(predictor: Predictor, count: int) -> torch.Tensor:
    """Drawings of the predictor's classes, preprocessed by the predictor's own transform."""
    classes = [tuple(n.split()) for n in predictor.class_names[:count]]
    drawings = draw_test_set(classes, per_class=1, seed=5)
    return torch.stack([predictor.transform(d.image) for d in drawings])


@pytest.mark.slow
def test_cli_writes_the_model_and_its_preprocessing(shipped_onnx: Path, shipped: Predictor) -> None:
    assert sorted(p.name for p in shipped_onnx.iterdir()) == ["model.onnx", "preprocess.json"]
    spec = json.loads((shipped_onnx / "preprocess.json").read_text())
    pre = shipped.preprocess
    assert spec["input"]["shape"] == ["batch", *pre["input_size"]]
    assert spec["preprocess"]["crop_mode"] == pre["crop_mode"] == "border"
    assert spec["preprocess"]["interpolation"] == pre["interpolation"]
    assert spec["preprocess"]["mean"] == list(pre["mean"]) and spec["preprocess"]["std"] == list(pre["std"])
    assert spec["class_names"] == shipped.class_names
    assert spec["seen"] == shipped.seen.tolist() and spec["gamma"] == shipped.gamma
    assert [o["name"] for o in spec["outputs"]] == ["attributes", "class_scores", "calibrated_scores"]
    model = onnx.load(str(shipped_onnx / "model.onnx"))
    onnx.checker.check_model(model)
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}  # standard operators only
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == DEFAULT_OPSET
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(pre["input_size"])  # dynamic batch


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_runtime_reproduces_the_predictor(shipped_onnx: Path, shipped: Predictor, batch: int) -> None:
    x = _images(shipped, batch)
    got = _run(_session(shipped_onnx / "model.onnx"), x)
    want = torch.tensor([p.values for p in shipped.predict_attributes(x)])
    assert got["attributes"].shape == want.shape
    assert scaled_error(got["attributes"], want) < TOLERANCE
    scores = class_scores(want, shipped.class_attributes)
    assert scaled_error(got["class_scores"], scores) < TOLERANCE
    calibrated = calibrated_stacking(scores, shipped.seen, shipped.gamma)
    assert scaled_error(got["calibrated_scores"], calibrated) < TOLERANCE
    top = [r.index for r in shipped.classify(list(x), top_k=1)]
    assert got["calibrated_scores"].argmax(1).tolist() == top


@pytest.mark.slow
def test_the_file_runs_in_a_process_without_zeromamba(shipped_onnx: Path, shipped: Predictor, tmp_path: Path) -> None:
    x = _images(shipped, 3)
    np.save(tmp_path / "x.npy", x.numpy())
    # -I -S: no PYTHONPATH, no current folder, no .pth files (zeromamba's editable install is one);
    # site-packages is added by hand so that onnxruntime and numpy import
    script = f"""
import sys
sys.path.append({sysconfig.get_paths()["purelib"]!r})
try:
    import zeromamba
except ImportError:
    pass
else:
    raise SystemExit("zeromamba is importable here: " + zeromamba.__file__)
import numpy as np, onnxruntime as ort
s = ort.InferenceSession({str(shipped_onnx / "model.onnx")!r}, providers=["CPUExecutionProvider"])
out = s.run(["attributes"], {{"images": np.load({str(tmp_path / "x.npy")!r})}})[0]
np.save({str(tmp_path / "attributes.npy")!r}, out)
print("torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # nor torch
    want = torch.tensor([p.values for p in shipped.predict_attributes(x)])
    assert scaled_error(torch.from_numpy(np.load(tmp_path / "attributes.npy")), want) < TOLERANCE


@pytest.mark.slow
def test_the_onnx_client_example_gives_zeromamba_classifys_answers(shipped_onnx: Path, tmp_path: Path) -> None:
    """``examples/onnx_client.py`` (ONNX Runtime, NumPy and Pillow; the preprocessing from
    preprocess.json alone) in a fresh process, against the installed ``zeromamba classify`` on the same
    files: small objects (framed), a large photo, transparency, EXIF rotation, 16-bit greyscale."""
    spec = json.loads((shipped_onnx / "preprocess.json").read_text())
    ops = [s["op"] for s in spec["preprocess"]["steps"]]
    assert ops == ["decode", "to_rgb", "frame_object", "resize_to_fit", "center_pad_crop", "normalize"]
    assert spec["architecture"] == "zeromamba_nano_s8" and spec["opset"] == DEFAULT_OPSET
    images = [str(p) for p in write_route_images(tmp_path / "images")]
    client = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO / "examples" / "onnx_client.py"), str(shipped_onnx), *images],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert client.returncode == 0, client.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in client.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported and not {m for m in imported if m.split(".")[0] in ("torch", "zeromamba")}
    cli = Path(sys.executable).with_name("zeromamba")
    done = subprocess.run(
        [str(cli), "classify", *images, "--format", "jsonl", "--top-k", "36"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = [json.loads(line) for line in client.stdout.splitlines()]
    ours = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["image"] for r in theirs] == [r["image"] for r in ours] == images
    for mine, reference in zip(theirs, ours):
        assert mine["class"] == reference["predictions"][0]["class"], mine["image"]
        want = {p["class"]: p["calibrated"] for p in reference["predictions"]}
        assert mine["scores"].keys() == want.keys()
        worst = max(abs(mine["scores"][k] - want[k]) for k in want)
        assert worst < 1e-4, f"{mine['image']}: scores differ by {worst:.2e}"


def test_the_file_declares_the_opset_it_has(shipped: Predictor, tmp_path: Path) -> None:
    from zeromamba.exporter import MIN_OPSET, _check_opset

    with pytest.raises(ExportError, match=f"needs opset {MIN_OPSET} or later"):
        zeromamba.export(shipped, tmp_path / "old", opset=MIN_OPSET - 1)
    assert not (tmp_path / "old").exists()  # nothing written, not even the folder
    # an opset the exporter could not convert to (it keeps its own and only logs why) is refused
    file = tmp_path / "m.onnx"
    onnx.save(
        onnx.helper.make_model(
            onnx.helper.make_graph([], "g", [], []), opset_imports=[onnx.helper.make_opsetid("", 18)]
        ),
        str(file),
    )
    _check_opset(file, 18)
    with pytest.raises(ExportError, match="could not convert the graph to opset 21"):
        _check_opset(file, 21)


def _fixture_predictor(root: Path) -> tuple[Predictor, dict[str, torch.Tensor]]:
    meta = json.loads((root / "meta.json").read_text())
    expected = load_file(root / "expected.safetensors")
    model = zeromamba.load_official(root / "zeromamba_official_format.pth")
    predictor = Predictor(
        model, class_attributes=expected["class_attributes"], seen=meta["seen_classes"], gamma=meta["gamma"]
    )
    return predictor, expected


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in fixture_dirs()])
def test_official_fixture_models_export_exactly(name: str, tmp_path: Path) -> None:
    root = next(p for p in fixture_dirs() if p.name == name)
    predictor, expected = _fixture_predictor(root)
    # the fixture's non-square input (72 x 40, 40 x 56), at its batch of 1 and at a batch of 3
    key = next(
        k
        for k in sorted(expected)
        if "." not in k and k.startswith("input") and expected[k].shape[2] != expected[k].shape[3]
    )
    x1 = expected[key]
    size = tuple(x1.shape[2:])
    result = zeromamba.export(predictor, tmp_path / name, input_size=size)
    assert result.input_size == (3, *size) and max(result.max_error.values()) < TOLERANCE
    session = _session(result.model_file)
    g = torch.Generator().manual_seed(1)
    for x in (x1, torch.cat([x1, torch.randn(2, *x1.shape[1:], generator=g)])):
        got = _run(session, x)
        with torch.inference_mode():
            eager = predictor.model(x)
        assert scaled_error(got["attributes"], eager.attributes) < TOLERANCE
        scores = class_scores(eager.attributes, predictor.class_attributes)
        assert scaled_error(got["class_scores"], scores) < TOLERANCE
        assert torch.equal(
            got["calibrated_scores"].argmax(1), calibrated_stacking(scores, predictor.seen, predictor.gamma).argmax(1)
        )
    # and the authors' own output for that input
    assert scaled_error(_run(session, x1)["attributes"], expected[f"{key}.fused_attr"]) < TOLERANCE


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown export format"):
        zeromamba.export(torch.nn.Linear(2, 2), tmp_path, format="tflite")
    with pytest.raises(ExportError, match="exports its own architectures"):
        zeromamba.export(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(ExportError, match="Predictor or a zeromamba model"):
        zeromamba.export("shapes-zsl", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_exports_a_zoo_model_served_by_the_hub(tiny_predictor, fakehub, tmp_path: Path) -> None:
    """``zeromamba export cub-gzsl`` as a user runs it, the zoo name resolved to a Hub repository and
    downloaded by huggingface_hub from the loopback Hub (HF_ENDPOINT); the real Hub is unreachable here."""
    from zeromamba import zoo

    original = tiny_predictor(["a", "b", "c"], ["x", "y", "z", "w"], input_size=32, seen=(0, 1))
    fakehub.publish("testorg/zeromamba-small-cub-gzsl", Path(original.save_pretrained(tmp_path / "cub")))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        {zoo.NAMESPACE_ENV: "testorg"},
        HF_ENDPOINT=fakehub.url,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    out = tmp_path / "cub-onnx"
    cli = Path(sys.executable).with_name("zeromamba")
    done = subprocess.run(
        [str(cli), "export", "cub-gzsl", "--format", "onnx", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(path.endswith("/model.safetensors") for _, path in fakehub.requests)
    preprocess = json.loads((out / "preprocess.json").read_text())
    assert preprocess["input"]["shape"] == ["batch", 3, 32, 32]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    got = _run(_session(out / "model.onnx"), x)
    with torch.inference_mode():
        want = torch.tensor([p.values for p in original.predict_attributes(x)])
    assert scaled_error(got["attributes"], want) < TOLERANCE
    assert got["class_scores"].shape == (2, 3)
