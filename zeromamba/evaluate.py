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

import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

from .attribution import attribute_maps, maps_on_image, resolve_method
from .constants import ZSL_IMAGE_SIZE
from .data import EvalSplit, ImageDataset, ZSLData, build_transform, selection_splits
from .data.shapes import SHAPES_GROUPS
from .errors import DataError, ZeroMambaError
from .explanation_metrics import DEFAULT_TOLERANCE, ExplanationScores, score_map, summarise
from .fileio import write_json
from .hub import load_pretrained
from .letterbox import letterbox_box
from .metrics import ZSLMetrics, format_table, plot_metrics, zsl_metrics
from .runtime import amp_dtype, autocast, collective_device, resolve_device, unwrap_model, world_and_rank
from .scoring import class_scores

__all__ = ["EvaluationResult", "evaluate", "evaluate_attributes", "evaluate_explanations", "predict_attributes"]


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
    net = unwrap_model(model)
    device = device or next(net.parameters()).device
    world, rank = world_and_rank()
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
    on = collective_device(device)
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
    """The module to evaluate and what its wrapper knows (gamma, preprocess).

    ``model`` is a module; an object holding one in ``.model`` (a ``Predictor``, a
    :class:`~zeromamba.format.LoadedModel`), whose ``.gamma``/``.preprocess`` are used; or a zoo name,
    Hub repository or folder, loaded with :func:`zeromamba.hub.load_pretrained`.
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_pretrained(os.fspath(model))
    info: dict[str, Any] = {}
    if not isinstance(model, nn.Module) and isinstance(getattr(model, "model", None), nn.Module):
        info = {k: getattr(model, k) for k in ("gamma", "preprocess") if getattr(model, k, None) is not None}
        model = model.model
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a ZeroMamba module, a Predictor or a model name/folder, got {type(model).__name__}")
    return model, info


def _input_size(image_size: int | None, preprocess: dict[str, Any] | None) -> int:
    if image_size is not None:
        return int(image_size)
    size = (preprocess or {}).get("input_size", ZSL_IMAGE_SIZE)
    return int(size[-1]) if isinstance(size, (tuple, list)) else int(size)


def _dataset_crop_mode(mode: str) -> str:
    """The model's preprocessing for dataset images: ``border`` / ``letterbox`` as saved, else the paper's squash."""
    return mode if mode in ("border", "letterbox") else "squash"


def _split(data: ZSLData, split: str, holdout_fraction: float, seed: int) -> EvalSplit:
    if split == "test":
        return data.test_split()
    if split == "val":
        return selection_splits(data, holdout_fraction, seed).val_split()
    raise ValueError(f"split must be 'test' or 'val', got {split!r}")


def _write_outputs(result: EvaluationResult, title: str, json_path: Any, plot_path: Any) -> None:
    if json_path:
        write_json(result.to_dict(), json_path)
    if plot_path:
        plot_metrics(result.metrics, plot_path, title=title)


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
        model: a :class:`~zeromamba.models.ZeroMamba`, a ``Predictor`` (or anything with the module
            in ``.model`` and optionally ``.gamma``/``.preprocess``), or a zoo name / Hub
            repository / folder (read with :func:`zeromamba.hub.load_pretrained`).
        data: from :func:`zeromamba.data.load_dataset`.
        split: ``"test"`` (test_seen + test_unseen; seen = trainval classes) or ``"val"`` (the
            model-selection split: held-out train-class images + validation classes).
        gamma: calibrated-stacking gamma for U/S/H; default the model's, else 0.
        image_size: input resolution (default: the model's, else 448).
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
    size = _input_size(image_size, info.get("preprocess"))
    part = _split(data, split, holdout_fraction, seed)
    if getattr(net, "num_attributes", data.num_attributes) != data.num_attributes:
        raise ZeroMambaError(
            f"the model predicts {net.num_attributes} attributes but {data.source} has {data.num_attributes}"
        )
    crop_mode = (info.get("preprocess") or {}).get("crop_mode", "squash")
    ds = data.dataset(part.indices, build_transform(size, train=False, crop_mode=_dataset_crop_mode(crop_mode)))
    rank = world_and_rank()[1]
    show = sys.stderr.isatty() and rank == 0 if progress is None else progress
    attrs, labels = predict_attributes(
        net, ds, batch_size, dev, amp_dtype(amp, dev), num_workers, progress=bool(show), desc=f"evaluate {split}"
    )
    metrics = evaluate_attributes(attrs, labels, data.class_attributes, part.seen, part.unseen, gamma)
    note = "" if split != "test" else " (best gamma is tuned on the test set: not a fair number)"
    table = format_table(metrics, title=f"{data.name} {split} split, {len(ds)} images{note}")
    result = EvaluationResult(metrics=metrics, split=split, gamma_source=source, table=table, num_images=len(ds))
    if rank == 0:
        _write_outputs(result, f"{data.name} {split}", json_path, plot_path)
    return result


def _explained_images(data: ZSLData, num_images: int) -> np.ndarray:
    if data.render is None or not hasattr(data.render, "sample"):
        raise DataError(
            f"{data.source}: explanation metrics need object masks, which only the generated shapes dataset has"
        )
    unseen = np.asarray(data.splits["test_unseen"])
    take = np.linspace(0, len(unseen) - 1, num=min(int(num_images), len(unseen))).round().astype(np.int64)
    return unseen[np.unique(take)]


@torch.no_grad()
def evaluate_explanations(
    model: Any,
    data: ZSLData,
    methods: list[str] | tuple[str, ...] | None = None,
    num_images: int = 300,
    batch_size: int = 16,
    device: str | torch.device | None = "cpu",
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, ExplanationScores]:
    """The pointing game and mass on object of explanation maps on unseen-class Shapes images.

    For ``num_images`` images of ``test_unseen`` (spread evenly over its classes), each method's
    map of the class's own shape, colour and fill attribute is placed on the image (as
    ``Predictor.explain`` does) and scored against the object's mask
    (:mod:`zeromamba.explanation_metrics`).

    Args:
        model: as for :func:`evaluate` (its saved preprocessing is used: size and crop mode).
        data: a Shapes dataset (``load_dataset("shapes:<seed>")``); other datasets have no masks.
        methods: explanation methods (default: the default method and ``attention``).

    Raises:
        DataError: a dataset without object masks.
    """
    net, info = _load_model(model)
    dev = resolve_device(device)
    net.to(dev).eval()
    size = _input_size(None, info.get("preprocess"))
    chosen = list(dict.fromkeys(resolve_method(m, (size, size)) for m in (methods or (None, "attention"))))
    crop_mode = _dataset_crop_mode((info.get("preprocess") or {}).get("crop_mode", "squash"))
    transform = build_transform(size, train=False, crop_mode=crop_mode)
    names = list(data.attribute_names or [])
    records: dict[str, list[dict[str, Any]]] = {m: [] for m in chosen}
    indices = _explained_images(data, num_images)
    for start in range(0, len(indices), batch_size):
        samples = [data.render.sample(int(i)) for i in indices[start : start + batch_size]]
        x = torch.stack([transform(s.image) for s in samples]).to(dev)
        targets = torch.tensor(
            [[names.index(getattr(s, g)) for g in SHAPES_GROUPS] for s in samples], dtype=torch.long, device=dev
        )
        for method in chosen:
            maps = attribute_maps(net, x, targets, method).cpu()
            for s, grid in zip(samples, maps):
                w, h = s.image.size
                box = letterbox_box(w, h, size, size) if crop_mode != "squash" else (0.0, 0.0, float(w), float(h))
                on_image = maps_on_image(grid, box, w, h).numpy()
                for k, group in enumerate(SHAPES_GROUPS):
                    records[method].append({"group": group, **score_map(on_image[k], s.mask, tolerance)})
    return {m: summarise(m, records[m], tolerance) for m in chosen}
