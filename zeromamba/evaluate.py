"""Evaluate a ZeroMamba model on a zero-shot split: CZSL, GZSL U/S/H, best gamma, seen-unseen curve.

Python::

    from zeromamba.data import load_dataset
    from zeromamba.evaluate import evaluate

    data = load_dataset("CUB", image_root="data/CUB", data_root="data/xlsa17/data")
    result = evaluate("runs/cub/model", data, json_path="cub.json", plot_path="cub.png")
    print(result.table)

Command line: ``zeromamba evaluate runs/cub/model --dataset CUB --data-root ... --image-root ...``.

Under ``torchrun`` every process predicts a shard of the images and the predictions are gathered,
so every rank computes the same metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

from .data import ImageDataset, ZSLData, add_data_arguments, build_transform, load_dataset, selection_splits
from .errors import ZeroMambaError
from .metrics import ZSLMetrics, format_table, plot_curve, save_json, zsl_metrics
from .scoring import class_scores

__all__ = [
    "EvaluationResult",
    "autocast",
    "evaluate",
    "evaluate_attributes",
    "predict_attributes",
    "register_cli",
    "resolve_device",
]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"``: this rank's GPU under torchrun (``LOCAL_RANK``), else ``cuda``, else CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(device)


def amp_dtype(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: ``auto`` is bfloat16 (or float16 where bf16 is missing) on CUDA and off on CPU."""
    if amp in (None, False, "off", "none", "fp32", "float32") or device.type != "cuda":
        return None
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` when ``dtype`` is set, a no-op otherwise."""
    if dtype is None:
        yield
    else:
        with torch.autocast(device.type, dtype=dtype):
            yield


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


@torch.no_grad()
def predict_attributes(
    model: nn.Module,
    dataset: ImageDataset,
    batch_size: int = 64,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    num_workers: int = 0,
    progress: bool = False,
    desc: str = "eval",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused attribute predictions ``(N, A)`` (float32, CPU) and labels ``(N,)``, in dataset order.

    Under an initialised process group each rank predicts every ``world``-th image and the
    results are all-gathered, so every rank returns the whole, identical result.
    """
    net = _unwrap(model)
    device = device or next(net.parameters()).device
    world, rank = _world()
    shard = list(range(rank, len(dataset), world))
    loader = DataLoader(Subset(dataset, shard), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    was_training = net.training
    net.eval()
    outs: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    try:
        from tqdm.auto import tqdm

        for x, _, pos in tqdm(loader, desc=desc, disable=not progress, leave=False):
            with autocast(device, dtype):
                out = net(x.to(device, non_blocking=True))
            outs.append(out.attributes.float().cpu())
            positions.append(pos)
    finally:
        net.train(was_training)
    num_attr = int(getattr(net, "num_attributes", 0)) or (outs[0].shape[1] if outs else 0)
    attrs = torch.cat(outs) if outs else torch.zeros(0, num_attr)
    pos = torch.cat(positions) if positions else torch.zeros(0, dtype=torch.long)
    if world > 1:
        attrs, pos = _all_gather_padded(attrs, pos, -(-len(dataset) // world), device)
    result = torch.zeros(len(dataset), attrs.shape[1])
    result[pos] = attrs
    return result, torch.as_tensor(dataset.labels, dtype=torch.long)


def _all_gather_padded(
    attrs: torch.Tensor, pos: torch.Tensor, max_n: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # all_gather needs equal shapes: pad each shard to the largest and mark padding with position -1
    on = device if dist.get_backend() == "nccl" else torch.device("cpu")
    a = torch.zeros(max_n, attrs.shape[1], device=on)
    p = torch.full((max_n,), -1, dtype=torch.long, device=on)
    a[: len(attrs)] = attrs.to(on)
    p[: len(pos)] = pos.to(on)
    world = dist.get_world_size()
    all_a = [torch.empty_like(a) for _ in range(world)]
    all_p = [torch.empty_like(p) for _ in range(world)]
    dist.all_gather(all_a, a)
    dist.all_gather(all_p, p)
    a, p = torch.cat(all_a).cpu(), torch.cat(all_p).cpu()
    keep = p >= 0
    return a[keep], p[keep]


def evaluate_attributes(
    attributes: torch.Tensor,
    labels: torch.Tensor | np.ndarray,
    class_attributes: torch.Tensor,
    seen_classes: np.ndarray | torch.Tensor,
    unseen_classes: np.ndarray | torch.Tensor,
    gamma: float,
) -> ZSLMetrics:
    """Metrics from attribute predictions, with the candidate classes = ``seen ∪ unseen`` only.

    Args:
        attributes: ``(N, A)`` predictions; labels ``(N,)`` indices into ``class_attributes`` rows.
        class_attributes: ``(C, A)`` of the whole dataset.
        seen_classes, unseen_classes: the class indices that play each role on this split (e.g. the
            train and validation classes for model selection); other classes are not candidates.
        gamma: the calibration to report U/S/H at.
    """
    seen = np.asarray(seen_classes).reshape(-1)
    unseen = np.asarray(unseen_classes).reshape(-1)
    cols = np.concatenate([seen, unseen])
    lab = np.asarray(labels).reshape(-1)
    keep = np.isin(lab, cols)
    remap = {int(c): i for i, c in enumerate(cols)}
    lab_pos = np.array([remap[int(c)] for c in lab[keep]], dtype=np.int64)
    scores = class_scores(attributes[torch.as_tensor(keep)].double(), class_attributes[torch.as_tensor(cols)].double())
    mask = np.zeros(len(cols), dtype=bool)
    mask[: len(seen)] = True
    return zsl_metrics(scores, lab_pos, mask, gamma)


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured. ``metrics`` holds fractions; ``table`` prints percentages."""

    metrics: ZSLMetrics
    split: str
    gamma_source: str
    table: str
    num_images: int

    def to_dict(self, include_curve: bool = True) -> dict[str, Any]:
        return {
            "split": self.split,
            "gamma_source": self.gamma_source,
            "num_images": self.num_images,
            "units": "fraction (multiply by 100 for %)",
            **self.metrics.to_dict(include_curve),
        }


def _load_model(model: Any) -> tuple[nn.Module, dict[str, Any]]:
    """A ZeroMamba module and what its wrapper knows (gamma, preprocess) from a module, a
    Predictor, or a zoo name / local folder."""
    info: dict[str, Any] = {}
    if isinstance(model, (str, os.PathLike)):
        import zeromamba

        loader = getattr(zeromamba, "from_pretrained", None)
        if loader is None:
            raise ZeroMambaError("zeromamba.from_pretrained is not available in this installation")
        model = loader(os.fspath(model))
    if not isinstance(model, nn.Module) and isinstance(getattr(model, "model", None), nn.Module):
        for key in ("gamma", "preprocess"):
            if getattr(model, key, None) is not None:
                info[key] = getattr(model, key)
        model = model.model
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a ZeroMamba module, a Predictor or a model name/folder, got {type(model).__name__}")
    return model, info


def evaluate(
    model: Any,
    data: ZSLData,
    split: str = "test",
    gamma: float | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    image_size: int | None = None,
    amp: str = "auto",
    num_workers: int = 0,
    json_path: str | os.PathLike | None = None,
    plot_path: str | os.PathLike | None = None,
    progress: bool | None = None,
    holdout_fraction: float = 0.2,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate a model on a dataset split.

    Args:
        model: a :class:`~zeromamba.models.ZeroMamba`, a ``Predictor``, or a zoo name / folder
            (read with ``zeromamba.from_pretrained``).
        data: from :func:`zeromamba.data.load_dataset`.
        split: ``"test"`` (test_seen + test_unseen; seen = trainval classes) or ``"val"`` (the
            model-selection split: held-out train-class images + validation classes).
        gamma: calibrated-stacking gamma for U/S/H; default the predictor's, else 0.
        image_size: input resolution (default: the predictor's, else 448).
        json_path, plot_path: write the metrics (with the whole curve) as JSON / the curve as PNG.

    Returns:
        :class:`EvaluationResult`; the best gamma it reports is tuned on ``split`` itself.
    """
    net, info = _load_model(model)
    dev = resolve_device(device)
    net.to(dev)
    if gamma is None:
        gamma, source = (float(info["gamma"]), "model") if info.get("gamma") is not None else (0.0, "default 0")
    else:
        source = "given"
    if image_size is None:
        size = (info.get("preprocess") or {}).get("input_size", 448)
        image_size = int(size[-1]) if isinstance(size, (tuple, list)) else int(size)
    if split == "test":
        idx = np.concatenate([data.splits["test_seen"], data.splits["test_unseen"]])
        seen, unseen = data.seen_classes, data.unseen_classes
    elif split == "val":
        sel = selection_splits(data, holdout_fraction, seed)
        idx = np.concatenate([sel.val_seen, sel.val_unseen])
        seen, unseen = sel.seen, sel.unseen
    else:
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    if getattr(net, "num_attributes", data.num_attributes) != data.num_attributes:
        raise ZeroMambaError(
            f"the model predicts {net.num_attributes} attributes but {data.source} has {data.num_attributes}"
        )
    ds = data.dataset(idx, build_transform(image_size, train=False))
    world, rank = _world()
    show = sys.stderr.isatty() and rank == 0 if progress is None else progress
    attrs, labels = predict_attributes(
        net, ds, batch_size, dev, amp_dtype(amp, dev), num_workers, progress=bool(show), desc=f"evaluate {split}"
    )
    metrics = evaluate_attributes(attrs, labels, data.class_attributes, seen, unseen, gamma)
    note = "" if split != "test" else " (best gamma is tuned on the test set: not a fair number)"
    table = format_table(metrics, title=f"{data.name} {split} split, {len(ds)} images{note}")
    result = EvaluationResult(metrics=metrics, split=split, gamma_source=source, table=table, num_images=len(ds))
    if rank == 0:
        if json_path:
            save_json(result.to_dict(), json_path)
        if plot_path:
            marks = {
                f"gamma {metrics.gamma:.3f} (H {100 * metrics.harmonic:.1f})": (metrics.seen, metrics.unseen),
                f"best gamma {metrics.best_gamma:.3f} (H {100 * metrics.best_harmonic:.1f})": (
                    metrics.best_seen,
                    metrics.best_unseen,
                ),
            }
            plot_curve(metrics.curve, plot_path, title=f"{data.name} {split}", marks=marks)
    return result
