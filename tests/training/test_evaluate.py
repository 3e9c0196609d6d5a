"""``zeromamba evaluate`` / :func:`zeromamba.evaluate.evaluate` on a model trained on the miniature dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import zeromamba
from zeromamba.cli import main
from zeromamba.data import load_xlsa17
from zeromamba.errors import ZeroMambaError
from zeromamba.evaluate import evaluate
from zeromamba.models import ZeroMamba
from zeromamba.train import train

from ..mini_xlsa17 import build_mini_xlsa17, mini_train_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("eval")
    mini = build_mini_xlsa17(root)
    cfg = mini_train_config(mini, root / "run", epochs=1, selection="last")
    with pytest.warns(UserWarning, match="init='none'"):
        result = train(cfg)
    return {"mini": mini, "result": result, "root": root}


def test_evaluate_reproduces_the_training_numbers(trained: dict[str, Any], tmp_path: Path) -> None:
    mini, result = trained["mini"], trained["result"]
    data = load_xlsa17(mini["data_root"], mini["image_root"], "MINI")
    ev = evaluate(result.model_dir, data, json_path=tmp_path / "m.json", plot_path=tmp_path / "m.png", device="cpu")
    assert ev.gamma_source == "model" and ev.metrics.gamma == pytest.approx(0.3)
    got = ev.metrics.to_dict(include_curve=False)
    assert got == pytest.approx(result.test)
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["split"] == "test" and saved["num_images"] == 6 + 8
    assert saved["curve"]["ausuc"] == pytest.approx(ev.metrics.ausuc)
    assert len(saved["curve"]["seen"]) == len(saved["curve"]["gamma"])
    with Image.open(tmp_path / "m.png") as im:
        assert im.format == "PNG"
    assert "CZSL" in ev.table and "test set" in ev.table
    # the same from a Predictor or a bare module with an explicit gamma
    predictor = zeromamba.from_pretrained(result.model_dir)
    same = evaluate(predictor, data, device="cpu")
    assert same.metrics.harmonic == pytest.approx(ev.metrics.harmonic)
    other = evaluate(predictor.model, data, gamma=0.0, image_size=32, device="cpu")
    assert other.gamma_source == "given" and other.metrics.czsl == pytest.approx(ev.metrics.czsl)
    val = evaluate(predictor, data, split="val", device="cpu")
    assert val.split == "val" and val.num_images == 4 + 6  # held-out train images + val classes minus test images


def test_cli_evaluate(trained: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mini, result = trained["mini"], trained["result"]
    args = ["--dataset", "MINI", "--data-root", str(mini["data_root"]), "--image-root", str(mini["image_root"])]
    code = main(
        [
            "evaluate",
            result.model_dir,
            *args,
            "--workers",
            "0",
            "--gamma",
            "0.1",
            "--json",
            str(tmp_path / "e.json"),
            "--plot",
            str(tmp_path / "e.png"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "AUSUC" in out and "0.100" in out
    assert json.loads((tmp_path / "e.json").read_text())["gamma"] == pytest.approx(0.1)
    assert (tmp_path / "e.png").is_file()
    # bad input: a one-line error and exit code 1
    assert main(["evaluate", result.model_dir, *args[:4], "--image-root", str(tmp_path / "none")]) == 1
    assert "image folder not found" in capsys.readouterr().err


def test_evaluate_bad_input(trained: dict[str, Any]) -> None:
    mini = trained["mini"]
    data = load_xlsa17(mini["data_root"], mini["image_root"], "MINI")
    wrong = ZeroMamba(num_attributes=5, embed_dim=8, depths=(1, 1, 1, 1), ssm_ratio=1.0)
    with pytest.raises(ZeroMambaError, match="5 attributes.*6"):
        evaluate(wrong, data, image_size=32)
    with pytest.raises(ValueError, match="split"):
        evaluate(trained["result"].model_dir, data, split="train")
