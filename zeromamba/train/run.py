"""A training run: its folder, the phases it trains, the model-selection protocol, the final test
evaluation and the export of the chosen weights.

Files (rank 0 writes them): ``config.json``, ``log.jsonl`` (one JSON object per epoch, then the
test line), ``checkpoints/`` (:mod:`~zeromamba.train.checkpoints`), ``selection.json`` (the
validation protocol's choice), ``model/`` (zoo format), ``result.json`` and ``test_curve.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..classes import load_class_attributes
from ..data import EvalSplit, ZSLData, build_transform, load_attribute_embeddings, load_dataset, selection_splits
from ..errors import TrainingError
from ..evaluate import evaluate_attributes, predict_attributes
from ..fileio import write_json, write_text
from ..format import save_pretrained
from ..metrics import ZSLMetrics, format_table, plot_metrics
from ..runtime import DistEnv, amp_dtype
from ..terminal import terminal_safe
from .checkpoints import Checkpoints, checkpoint_name, seed_everything
from .config import SELECTION_LABELS, TrainConfig
from .loop import PhaseState, SeenTargets, SwatchFeed, Trainer, wrap_ddp
from .recipe import build_model, init_weights

__all__ = ["Run", "TrainResult"]

# test-only: each rank writes rank<r>.json (parameter checksum + metrics) into this folder
_RANK_REPORT_ENV = "ZEROMAMBA_TEST_RANK_REPORT"


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        output_dir: the run folder; ``model_dir``: the final weights (zoo format).
        selection: the protocol and what it means (:data:`~zeromamba.train.SELECTION_LABELS`).
        best_epoch: the epoch the final weights come from (or were retrained to).
        gamma: the gamma saved with the model and used for the test numbers.
        test: test metrics (fractions, see :class:`~zeromamba.metrics.ZSLMetrics`), without the curve.
        validation: the validation metrics at the chosen epoch (``selection="validation"``).
        extra_models: other exported models (the best-CZSL epoch under the authors' protocol).
        history: one record per trained epoch (what ``log.jsonl`` holds).
    """

    output_dir: str
    model_dir: str
    selection: str
    best_epoch: int
    gamma: float
    test: dict[str, Any]
    validation: dict[str, Any] | None = None
    extra_models: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _PhaseResult:
    model: nn.Module
    history: list[dict[str, Any]]
    best: dict[str, Any]


@dataclass
class _Outcome:
    """What a selection protocol chose and how it did on the test split."""

    model: nn.Module
    gamma: float
    best_epoch: int
    history: list[dict[str, Any]]
    test: ZSLMetrics
    validation: dict[str, Any] | None = None
    extra_models: dict[str, str] = field(default_factory=dict)


def _finite_or_none(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by ``None`` (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    return obj


def _epoch_line(record: dict[str, Any], split: str | None) -> str:
    text = (
        f"[{record['phase']}] epoch {record['epoch']}: loss {record['loss']:.4f} "
        f"(ce {record['ce']:.4f}, l1 {record['l1']:.4f})"
    )
    if split and split in record:
        m = record[split]

        def pct(v: Any) -> str:
            return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

        text += (
            f" | {split}: CZSL {pct(m['czsl'])} U {pct(m['unseen'])} S {pct(m['seen'])} H {pct(m['harmonic'])}"
            f" (best gamma {m['best_gamma']:.3f}: H {pct(m['best_harmonic'])})"
        )
    return text


class Run:
    """One training run of ``cfg`` on this process (rank ``env.rank`` of ``env.world``)."""

    def __init__(self, cfg: TrainConfig, env: DistEnv):
        self.cfg, self.env = cfg, env
        self.out = Path(cfg.output_dir)
        self.ckpt = Checkpoints(self.out / "checkpoints")
        self.amp = amp_dtype(cfg.amp, env.device)
        show = cfg.progress == "on" or (cfg.progress == "auto" and sys.stderr.isatty())
        self.progress = show and env.main
        self.trainer = Trainer(cfg, env, self.amp, self.ckpt, self.progress)
        self.data: ZSLData = load_dataset(
            cfg.dataset,
            cfg.image_root,
            cfg.data_root,
            strip_components=cfg.strip_components,
            path_regex=cfg.path_regex,
            attributes_csv=cfg.attributes_csv,
            unseen_classes=cfg.unseen_classes,
            test_seen_fraction=cfg.test_seen_fraction,
            val_class_fraction=cfg.val_class_fraction,
            shapes_variety=cfg.shapes_variety,
        )
        self.embeddings = None
        if cfg.embeddings:
            self.embeddings = load_attribute_embeddings(cfg.embeddings, self.data.num_attributes, cfg.allow_pickle)
        elif env.main and cfg.init_scope != "model":  # a whole model brings its semantic matrix
            warnings.warn("no attribute embeddings given: the SLP's semantic matrix starts random", stacklevel=3)
        self.latest = self._claim_folder()

    def _claim_folder(self) -> dict[str, Any] | None:
        """Refuse a folder that holds a run unless resuming; write ``config.json``. Returns the
        checkpoint to resume from."""
        latest = self.ckpt.latest()
        if latest is not None and not self.cfg.resume:
            raise TrainingError(
                f"{self.out} already holds a run (checkpoints/latest.json); continue it with --resume "
                "or choose another output folder"
            )
        if self.env.main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.cfg.to_dict(), self.out / "config.json")
        self.env.barrier()
        return latest

    # -- output

    def log(self, record: dict[str, Any]) -> None:
        """Append a line to ``log.jsonl`` (rank 0)."""
        if not self.env.main:
            return
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(_finite_or_none(record)) + "\n")

    def _trim_log(self, phase: str, epoch: int) -> None:
        # an epoch logged but not checkpointed before an interruption is trained again: drop its line
        path = self.out / "log.jsonl"
        if not self.env.main or not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines()
        keep = []
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the interruption
            if rec.get("phase") == phase and rec.get("epoch", 0) > epoch:
                continue
            keep.append(line)
        if len(keep) != len(lines):
            write_text(path, "".join(k + "\n" for k in keep))

    def say(self, text: str) -> None:
        if self.env.main:
            print(terminal_safe(text, keep_newlines=True), flush=True)  # a dataset's name is a folder's

    # -- selection protocols

    def run(self) -> TrainResult:
        """Train and select as ``cfg.selection`` says, evaluate the test split, export the model."""
        protocols = {"validation": self._select_on_validation, "authors": self._select_on_test, "last": self._last}
        return self._finish(protocols[self.cfg.selection]())

    def _select_on_validation(self) -> _Outcome:
        """Epoch and gamma from a validation split of the seen classes; then (by default) retrain
        on trainval for that many epochs. The test split is evaluated once, at the end."""
        data = self.data
        chosen = self._validation_choice()
        gamma, best_epoch = float(chosen["gamma"]), int(chosen["epoch"])
        self.say(f"chosen on validation: epoch {best_epoch}, gamma {gamma:.3f}")
        if self.cfg.retrain:
            r = self._phase("final", data.splits["trainval"], data.seen_classes, best_epoch, None, track=None)
            model, history = r.model, r.history
        else:
            model, history = self._model_from(chosen["checkpoint"]), []
        test = self._evaluate(model, data.test_split(), gamma)
        return _Outcome(model, gamma, best_epoch, history, test, validation=chosen["val"])

    def _validation_choice(self) -> dict[str, Any]:
        """The ``select`` phase's best epoch (``selection.json``; read back when resuming the final phase)."""
        cfg = self.cfg
        sel = selection_splits(self.data, cfg.holdout_fraction, cfg.seed)
        path = self.out / "selection.json"
        if self.latest is not None and self.latest["phase"] == "final" and path.is_file():
            return json.loads(path.read_text())
        self.say(f"selection on validation: {len(sel.seen)} train classes, {len(sel.unseen)} val classes")
        r = self._phase("select", sel.train, sel.seen, cfg.epochs, sel.val_split(), track="val")
        best = r.best.get("main")
        if best is None:
            raise TrainingError("no validation result to choose an epoch from")
        chosen = {
            "epoch": best["epoch"],
            "gamma": best["metrics"]["best_gamma"],
            "val": best["metrics"],
            "checkpoint": best["dir"],
        }
        if self.env.main:
            write_json(chosen, path)
        self.env.barrier()
        self.latest = None
        return chosen

    def _select_on_test(self) -> _Outcome:
        """The authors' protocol: the epoch with the best test H at the preset gamma (and, exported
        beside it, the epoch with the best test CZSL)."""
        cfg, data = self.cfg, self.data
        test_split = data.test_split()
        r = self._phase("final", data.splits["trainval"], data.seen_classes, cfg.epochs, test_split, track="test")
        best = r.best["main"]
        model = self._model_from(best["dir"])
        test = self._evaluate(model, test_split, cfg.gamma)
        extra = {}
        czsl = r.best.get("czsl")
        if czsl is not None:
            extra["best_czsl"] = self._export(self._model_from(czsl["dir"]), "model-best-czsl", cfg.gamma)
        return _Outcome(model, cfg.gamma, int(best["epoch"]), r.history, test, extra_models=extra)

    def _last(self) -> _Outcome:
        """No selection: all epochs, the preset gamma."""
        cfg, data = self.cfg, self.data
        r = self._phase("final", data.splits["trainval"], data.seen_classes, cfg.epochs, None, track=None)
        test = self._evaluate(r.model, data.test_split(), cfg.gamma)
        return _Outcome(r.model, cfg.gamma, cfg.epochs, r.history, test)

    def _finish(self, outcome: _Outcome) -> TrainResult:
        """Export the chosen model, print and log the test numbers, write ``result.json`` and the curve."""
        cfg, data, test = self.cfg, self.data, outcome.test
        model_dir = self._export(outcome.model, "model", outcome.gamma)
        label = SELECTION_LABELS[cfg.selection]
        self.say(format_table(test, title=f"{data.name} test ({label})"))
        result = TrainResult(
            output_dir=str(self.out),
            model_dir=model_dir,
            selection=f"{cfg.selection}: {label}",
            best_epoch=outcome.best_epoch,
            gamma=outcome.gamma,
            test=test.to_dict(include_curve=False),
            validation=outcome.validation,
            extra_models=outcome.extra_models,
            history=outcome.history,
        )
        self.log({"event": "test", "selection": cfg.selection, "epoch": outcome.best_epoch, "test": result.test})
        if self.env.main:
            full = {**result.to_dict(), "test_curve": test.curve.to_dict()}
            write_json(_finite_or_none(full), self.out / "result.json")
            plot_metrics(test, self.out / "test_curve.png", title=f"{data.name} test")
        self._rank_report(outcome.model, test)
        return result

    # -- phases and epochs

    def _phase(
        self,
        phase: str,
        train_idx: np.ndarray,
        seen: np.ndarray,
        epochs: int,
        split: EvalSplit | None,
        track: str | None,
    ) -> _PhaseResult:
        """Train ``epochs`` epochs on ``train_idx`` (classes ``seen``), evaluating ``split`` each
        ``eval_every`` epochs and tracking the best epoch (``track``: ``"val"``, ``"test"`` or ``None``)."""
        state = self._start_phase(phase, epochs)
        net = wrap_ddp(state.model, self.env)
        targets = SeenTargets.of(self.data, seen, self.env.device)
        targets.check(self.cfg)
        transform = build_transform(
            self.cfg.image_size, train=True, crop_mode=self.cfg.crop_mode, augment=self.cfg.augment
        )
        swatches = SwatchFeed.of(self.cfg, targets, transform)
        loader, sampler = self.trainer.loader(self.data.dataset(train_idx, transform))
        for epoch in range(state.start, epochs):
            sampler.set_epoch(epoch)
            self._epoch(net, loader, state, targets, phase, epoch, epochs, split, track, swatches)
        return _PhaseResult(model=state.model, history=state.history, best=state.best)

    def _start_phase(self, phase: str, epochs: int) -> PhaseState:
        """A seeded model and optimiser; resumed from the latest checkpoint when it is of this phase."""
        cfg = self.cfg
        seed_everything(cfg.seed)
        model = build_model(cfg, self.data.num_attributes, self.embeddings, load_init=self.latest is None)
        model.to(self.env.device)
        state = PhaseState.fresh(model, cfg, self.amp)
        if self.latest is not None and self.latest["phase"] == phase:
            state.restore(self.ckpt, self.latest["dir"])
            self.say(f"resumed {phase} from {self.latest['dir']} (epoch {state.start} of {epochs})")
            self._trim_log(phase, state.start)
        elif self.latest is not None:
            init_weights(model, cfg.init, cfg.init_scope)  # a checkpoint of another phase: start afresh
        self.latest = None
        return state

    def _epoch(
        self,
        net: nn.Module,
        loader: DataLoader,
        state: PhaseState,
        targets: SeenTargets,
        phase: str,
        epoch: int,
        epochs: int,
        split: EvalSplit | None,
        track: str | None,
        swatches: SwatchFeed | None = None,
    ) -> None:
        """Train one epoch, evaluate when due, log it and checkpoint it."""
        cfg, env = self.cfg, self.env
        t0 = time.time()
        lrs = [g["lr"] for g in state.optimizer.param_groups]
        stats = self.trainer.train_epoch(net, loader, state, targets, phase, epoch, epochs, swatches)
        state.scheduler.step()
        record: dict[str, Any] = {"phase": phase, "epoch": epoch + 1, "lr": lrs, **stats}
        if split is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == epochs):
            m = self._evaluate(state.model, split, cfg.gamma)
            record[split.name] = m.to_dict(include_curve=False)
            self._update_best(state.best, m, epoch + 1, phase, track)
        record["time_s"] = round(time.time() - t0, 3)
        state.history.append(record)
        self.log(record)
        self.say(_epoch_line(record, split.name if split else None))
        if env.main:
            keep = {b["dir"] for b in state.best.values()}
            self.ckpt.save(phase, epoch + 1, state.model, state.to_checkpoint(phase, epoch + 1, env.world), keep)
        env.barrier()

    def _update_best(self, best: dict[str, Any], m: ZSLMetrics, epoch: int, phase: str, track: str | None) -> None:
        if track is None:
            return
        metrics = m.to_dict(include_curve=False)
        if track == "val":  # gamma is tuned on validation too
            keys = {"main": m.best_harmonic if self.cfg.select_metric == "harmonic" else m.czsl}
        else:  # authors: H at the fixed gamma, and CZSL separately
            keys = {"main": m.harmonic, "czsl": m.czsl}
        for key, score in keys.items():
            old = best.get(key)
            # the authors keep the later of equal CZSL epochs (<=) and the earlier of equal H epochs (<)
            later_wins = track == "test" and key == "czsl"
            better = old is None or score > old["score"] or (later_wins and score == old["score"])
            if math.isfinite(score) and better:
                best[key] = {
                    "epoch": epoch,
                    "score": float(score),
                    "dir": checkpoint_name(phase, epoch),
                    "metrics": _finite_or_none(metrics),
                }

    # -- models

    def _model_from(self, checkpoint: str) -> nn.Module:
        model = build_model(self.cfg, self.data.num_attributes, self.embeddings, load_init=False)
        model.load_state_dict(self.ckpt.load_weights(checkpoint))
        return model.to(self.env.device)

    def _evaluate(self, model: nn.Module, split: EvalSplit, gamma: float) -> ZSLMetrics:
        ds = self.data.dataset(
            split.indices, build_transform(self.cfg.image_size, train=False, crop_mode=self.cfg.crop_mode)
        )
        attrs, labels = predict_attributes(
            model,
            ds,
            self.cfg.eval_batch_size,
            self.env.device,
            self.amp,
            self.cfg.num_workers,
            progress=self.progress,
            desc=f"evaluate {split.name}",
        )
        return evaluate_attributes(attrs, labels, self.data.class_attributes, split.seen, split.unseen, gamma)

    def _export(self, model: nn.Module, name: str, gamma: float) -> str:
        """Write ``model`` in the zoo format (``model.safetensors``, ``config.json``, class attributes)."""
        path = self.out / name
        if self.env.main:
            data, size = self.data, self.cfg.image_size
            cpu = build_model(self.cfg, data.num_attributes, self.embeddings, load_init=False)
            cpu.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
            matrix, _ = load_class_attributes(data.class_attributes, data.num_attributes)  # checked, L2-normalised
            save_pretrained(
                cpu,
                path,
                class_attributes=matrix,
                class_names=data.class_names,
                attribute_names=data.attribute_names,
                seen=data.seen_mask(),
                gamma=float(gamma),
                dataset=data.name,
                preprocess={"input_size": (3, size, size), "crop_mode": self.cfg.crop_mode},
            )
        self.env.barrier()
        return str(path)

    def _rank_report(self, model: nn.Module, metrics: ZSLMetrics) -> None:
        folder = os.environ.get(_RANK_REPORT_ENV)
        if not folder:
            return
        with torch.no_grad():
            params = [p.detach().double().cpu() for p in model.parameters()]
            checksum = float(sum(p.sum() for p in params))
            abs_sum = float(sum(p.abs().sum() for p in params))
        report = {
            "rank": self.env.rank,
            "world": self.env.world,
            "param_sum": checksum,
            "param_abs_sum": abs_sum,
            "test": _finite_or_none(metrics.to_dict(include_curve=False)),
        }
        write_json(report, Path(folder) / f"rank{self.env.rank}.json")
