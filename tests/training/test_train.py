"""Training on the miniature xlsa17 dataset: the three selection protocols, resume, NaN handling,
checkpoints, initialisation, configuration, and loading the result with from_pretrained."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import zeromamba
import zeromamba.train.loop as loop
from zeromamba.errors import CheckpointError, ConfigError, DataError, TrainingError
from zeromamba.models import VMamba
from zeromamba.train import TrainConfig, build_model, compute_loss, make_optimizer, resolve_config, train

from ..mini_xlsa17 import MINI_MODEL, NUM_ATTR, NUM_CLASSES, mini_train_config

TINY = MINI_MODEL

pytestmark = pytest.mark.filterwarnings("ignore:init='none'", "ignore:no attribute embeddings")


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(os.path.join(model_dir, "model.safetensors"))


def _log(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_resume_continues_the_same_schedule(
    mini_xlsa17: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = train(mini_train_config(mini_xlsa17, tmp_path / "a", selection="last"))

    calls = {"n": 0}
    real = loop.Trainer.train_epoch

    def crash_on_third(self: Any, *args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the machine went away mid-run
        return real(self, *args, **kw)

    monkeypatch.setattr(loop.Trainer, "train_epoch", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        train(mini_train_config(mini_xlsa17, tmp_path / "b", selection="last"))
    monkeypatch.setattr(loop.Trainer, "train_epoch", real)
    ck = tmp_path / "b" / "checkpoints"
    assert json.loads((ck / "latest.json").read_text())["epoch"] == 2
    assert sorted(p.name for p in ck.iterdir()) == ["final-epoch0002", "latest.json"]  # no half-written folder

    with pytest.raises(TrainingError, match="--resume"):
        train(mini_train_config(mini_xlsa17, tmp_path / "b", selection="last"))
    with open(tmp_path / "b" / "log.jsonl", "a") as f:  # an epoch logged, then cut off before its checkpoint
        f.write(json.dumps({"phase": "final", "epoch": 3, "loss": 0.0}) + "\n" + '{"phase": "fin')
    resumed = train({"output_dir": str(tmp_path / "b"), "resume": True})  # the rest comes from config.json
    a, b = _weights(straight.model_dir), _weights(resumed.model_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same lr, momentum, RNG
    assert resumed.test == straight.test
    log = _log(tmp_path / "b")
    assert [r.get("epoch") for r in log if r.get("phase")] == [1, 2, 3]
    assert [r["lr"][0] for r in log if r.get("phase")] == pytest.approx([1e-3, 5e-4, 2.5e-4])

    predictor = zeromamba.from_pretrained(resumed.model_dir)
    assert predictor.class_names[:2] == ["001.Class_0", "002.Class_1"]
    assert predictor.gamma == pytest.approx(0.3)
    assert predictor.seen.tolist() == [True] * 6 + [False] * 2
    assert predictor.preprocess["input_size"] == (3, 32, 32)
    img = next((mini_xlsa17["image_root"] / "CUB_200_2011" / "images" / "007.Class_6").iterdir())
    assert predictor.classify(str(img), top_k=3) is not None


def test_validation_protocol_never_evaluates_test_before_the_end(mini_xlsa17: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "v"
    result = train(mini_train_config(mini_xlsa17, out, epochs=2))  # selection="validation" is the default
    assert result.selection.startswith("validation")
    log = _log(out)
    epochs = [r for r in log if r.get("phase")]
    assert [r["phase"] for r in epochs][:2] == ["select", "select"] and all("test" not in r for r in epochs)
    assert all("val" in r for r in epochs if r["phase"] == "select")
    assert [r for r in log if r.get("event") == "test"] and len([r for r in log if r.get("event") == "test"]) == 1
    chosen = json.loads((out / "selection.json").read_text())
    assert result.gamma == pytest.approx(chosen["gamma"]) and result.best_epoch == chosen["epoch"]
    assert len([r for r in epochs if r["phase"] == "final"]) == chosen["epoch"]  # retrained for that many epochs
    saved = json.loads((out / "result.json").read_text())
    assert len(saved["test_curve"]["gamma"]) >= 2 and (out / "test_curve.png").is_file()
    assert zeromamba.from_pretrained(result.model_dir).gamma == pytest.approx(result.gamma)


def test_authors_protocol_exports_best_gzsl_and_czsl(mini_xlsa17: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "t"
    with pytest.warns(UserWarning, match="unpickling"):  # the authors' .pkl, opted in
        result = train(
            mini_train_config(
                mini_xlsa17,
                out,
                selection="authors",
                epochs=2,
                embeddings=str(mini_xlsa17["pickle"]),
                allow_pickle=True,
            )
        )
    assert "test set" in result.selection
    assert all("test" in r for r in _log(out) if r.get("phase"))
    assert set(result.extra_models) == {"best_czsl"}
    assert zeromamba.from_pretrained(result.extra_models["best_czsl"]).num_classes == NUM_CLASSES


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    mini_xlsa17: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = loop.compute_loss
    calls = {"n": 0}

    def nan_later(*args: Any) -> Any:
        calls["n"] += 1
        loss, ce, l1 = real(*args)
        return (loss * float("nan"), ce, l1) if calls["n"] > 2 else (loss, ce, l1)

    monkeypatch.setattr(loop, "compute_loss", nan_later)
    out = tmp_path / "n"
    with pytest.raises(TrainingError, match="non-finite loss.*epoch 2.*final-epoch0001"):
        train(mini_train_config(mini_xlsa17, out, selection="last", max_steps_per_epoch=2))
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert latest["epoch"] == 1
    weights = _weights(str(out / "checkpoints" / latest["dir"]))
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_init_from_a_local_vmamba_release(mini_xlsa17: dict[str, Path], tmp_path: Path) -> None:
    backbone = VMamba(embed_dim=8, depths=(1, 1, 1, 1), ssm_ratio=1.0)
    torch.save({"model": backbone.state_dict()}, tmp_path / "vssm_tiny_test.pth")
    cfg = resolve_config(mini_train_config(mini_xlsa17, tmp_path / "i", init=str(tmp_path / "vssm_tiny_test.pth")))
    model = build_model(cfg, NUM_ATTR)
    for k, v in backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    wrong = resolve_config(
        mini_train_config(
            mini_xlsa17,
            tmp_path / "j",
            init=str(tmp_path / "vssm_tiny_test.pth"),
            model={"embed_dim": 16, "depths": [1, 1, 1, 1], "ssm_ratio": 1.0},
        )
    )
    with pytest.raises(CheckpointError, match="shape mismatch"):
        build_model(wrong, NUM_ATTR)
    with pytest.raises(CheckpointError, match="not found|cannot"):
        build_model(
            resolve_config(mini_train_config(mini_xlsa17, tmp_path / "k", init=str(tmp_path / "nope.pth"))), NUM_ATTR
        )


def test_init_scope_model_starts_from_a_whole_trained_model(tmp_path: Path) -> None:
    # a second, fine-tuning stage: the heads and the semantic matrix come along, not only the backbone
    shipped = zeromamba.load_model("shapes-zsl")
    recipe = json.loads((Path(__file__).resolve().parents[2] / "examples" / "shapes_zsl.json").read_text())
    base = {k: recipe[k] for k in ("dataset", "architecture", "model") if k in recipe}
    whole = resolve_config({**base, "init": "shapes-zsl", "init_scope": "model", "shapes_variety": "wide"})
    model = build_model(whole, 10)
    assert all(torch.equal(v, shipped.state_dict()[k]) for k, v in model.state_dict().items())
    backbone_only = build_model(resolve_config({**base, "init": "shapes-zsl"}), 10)
    assert all(torch.equal(v, shipped.backbone.state_dict()[k]) for k, v in backbone_only.backbone.state_dict().items())
    heads = [k for k in shipped.state_dict() if not k.startswith("backbone.")]
    assert heads and not all(torch.equal(backbone_only.state_dict()[k], shipped.state_dict()[k]) for k in heads)
    # the example second stage fine-tunes the first stage's model: same model, wide variety, whole-model init
    stage2 = resolve_config(Path(__file__).resolve().parents[2] / "examples" / "shapes_zsl_finetune.json")
    assert (stage2.init_scope, stage2.shapes_variety, stage2.model) == ("model", "wide", recipe["model"])
    assert stage2.init == "runs/shapes-zsl/model" and stage2.lr < recipe["lr"]
    # and the third fine-tunes the second's on the uneven variety, the same way
    stage3 = resolve_config(Path(__file__).resolve().parents[2] / "examples" / "shapes_zsl_finetune_uneven.json")
    assert (stage3.init_scope, stage3.shapes_variety, stage3.model) == ("model", "uneven", recipe["model"])
    assert stage3.init == "runs/shapes-zsl-finetune/model" and stage3.lr == stage2.lr
    with pytest.raises(ConfigError, match="init_scope 'model' needs an init"):
        resolve_config({**base, "init": "none", "init_scope": "model"})
    with pytest.raises(ConfigError, match="init_scope must be"):
        resolve_config({**base, "init_scope": "heads"})
    with pytest.raises(ConfigError, match="shapes_variety is for the shapes dataset"):
        resolve_config({"dataset": "CUB", "shapes_variety": "wide"})
    with pytest.raises(ConfigError, match="shapes_variety must be one of standard, wide"):
        resolve_config({**base, "shapes_variety": "plain"})


def test_optimizer_groups_and_loss() -> None:
    cfg = resolve_config({"dataset": "CUB", "model": TINY})
    model = build_model(cfg, 5, load_init=False)
    opt = make_optimizer(model, cfg)
    assert [(g["name"], g["lr"]) for g in opt.param_groups] == [
        ("backbone_slp", 1e-3),
        ("global_head", 1e-3),
        ("fusion", 1e-4),
    ]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 1e-3 for g in opt.param_groups)
    att = torch.nn.functional.normalize(torch.rand(3, 5), dim=1)
    fused = torch.randn(4, 5)
    y = torch.tensor([0, 2, 1, 2])
    loss, ce, l1 = compute_loss(fused, y, att, 0.5)
    logits = fused @ att.T
    want_ce = -torch.log_softmax(logits, 1)[torch.arange(4), y].mean()
    want_l1 = (fused - att[y]).abs().mean()
    assert torch.allclose(ce, want_ce) and torch.allclose(l1, want_l1) and torch.allclose(loss, want_ce + 0.5 * want_l1)


def test_loss_matches_the_official_training_step(official_fixtures: Path) -> None:
    from safetensors.torch import load_file

    fixture = official_fixtures / "parity_dstate1"
    exp = load_file(str(fixture / "expected.safetensors"))
    model = zeromamba.load_official(fixture / "zeromamba_official_format.pth").train()
    out = model(exp["input0"])
    loss, _, _ = compute_loss(out.attributes, exp["train.labels"].long(), exp["class_attributes"][:4], 0.5)
    assert loss.item() == pytest.approx(exp["train.loss"].item(), rel=1e-4)


def test_presets_and_config_files(tmp_path: Path) -> None:
    for name, (lam, gamma) in {"CUB": (1.0, 0.3), "SUN": (0.2, 0.35), "AWA2": (0.0, 0.98)}.items():
        cfg = resolve_config({"dataset": name})
        assert (cfg.l1_weight, cfg.gamma) == (lam, gamma)
        assert (cfg.image_size, cfg.batch_size, cfg.epochs, cfg.seed) == (448, 32, 100, 0)
        assert (cfg.lr, cfg.lr_global, cfg.lr_fusion, cfg.momentum, cfg.weight_decay) == (1e-3, 1e-3, 1e-4, 0.9, 1e-3)
        assert cfg.milestones == [10, 20, 30, 40] and cfg.lr_decay == 0.5
    (tmp_path / "c.toml").write_text('dataset = "SUN"\nepochs = 5\ngamma = 0.4\n[model]\nembed_dim = 8\n')
    cfg = resolve_config(tmp_path / "c.toml")
    assert (cfg.dataset, cfg.epochs, cfg.gamma, cfg.l1_weight, cfg.model) == ("SUN", 5, 0.4, 0.2, {"embed_dim": 8})
    (tmp_path / "c.json").write_text(json.dumps({"dataset": "AWA2", "batch_size": "16"}))
    assert resolve_config(tmp_path / "c.json").batch_size == 16
    with pytest.raises(ConfigError, match="epoch.*did you mean epochs"):
        resolve_config({"epoch": 3})
    with pytest.raises(ConfigError, match="selection"):
        resolve_config({"selection": "best-on-test"})
    with pytest.raises(ConfigError, match="lr"):
        resolve_config({"lr": -1})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        resolve_config(tmp_path / "bad.json")
    assert isinstance(resolve_config(TrainConfig()), TrainConfig)


def test_cli_train_and_bad_data(
    mini_xlsa17: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zeromamba.cli import main

    (tmp_path / "cfg.json").write_text(
        json.dumps(mini_train_config(mini_xlsa17, tmp_path / "cli", epochs=1, selection="last"))
    )
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--gamma", "0.2", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["gamma"] == 0.2
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--set", "l1_weight=0.5"]) == 0
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["l1_weight"] == 0.5
    assert "model saved to" in capsys.readouterr().out
    # bad input is reported as a one-line error, exit code 1
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--image-root", str(tmp_path)]) == 1
    assert "cannot locate the images" in capsys.readouterr().err
    np.save(tmp_path / "short.npy", np.zeros((NUM_ATTR - 1, 300), np.float32))
    with pytest.raises(DataError, match="short.npy.*5 embedding rows"):
        train(mini_train_config(mini_xlsa17, tmp_path / "e", embeddings=str(tmp_path / "short.npy")))
