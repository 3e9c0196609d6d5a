"""The Shapes demo model(s) on a fresh seed and on the test drawings: accuracy and explanation quality.

For each model (a zoo name or a folder; e.g. the shipped ``shapes-zsl`` and a copy of its
predecessor), in one process on the same images:

* CZSL and GZSL U / S / H at the model's gamma on ``shapes:<seed>`` (27 x 50 seen-class and
  9 x 100 unseen-class images),
* the accuracy of each attribute group (shape, colour, fill: the highest-scoring value of the
  group) on the unseen-class images,
* the pointing game and mass on object per attribute group and explanation method on ``--images``
  unseen-class images, with their chance levels,
* on the test drawings (``tests/drawings.py``: another drawing routine, ``--per-class`` drawings
  of each of the 36 classes) top-1 among all 36 classes as ``classify`` ranks them, and the
  pointing game of each method.

Prints JSON (``--out`` also writes it). Example::

    python benchmarks/shapes_demo.py --models shapes-zsl runs/old-shapes-zsl --seed 4242
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import zeromamba  # noqa: E402
from zeromamba.attribution import EXPLAIN_METHODS, attribute_maps, maps_on_image  # noqa: E402
from zeromamba.data.shapes import SHAPES_ATTRIBUTES, SHAPES_GROUPS, load_shapes, shapes_classes  # noqa: E402
from zeromamba.evaluate import evaluate, evaluate_explanations, predict_attributes  # noqa: E402
from zeromamba.explanation_metrics import score_map, summarise  # noqa: E402


def group_accuracy(predictor: Any, data: Any) -> dict[str, float]:
    """Accuracy of each attribute group on the unseen-class test images."""
    from zeromamba.data import build_transform

    mode = predictor.preprocess["crop_mode"]
    crop = mode if mode in ("border", "letterbox") else "squash"
    idx = data.splits["test_unseen"]
    ds = data.dataset(idx, build_transform(predictor.preprocess["input_size"][-1], crop_mode=crop))
    values, labels = predict_attributes(predictor.model, ds, batch_size=128)
    truth = data.class_attributes[labels]
    out = {}
    for group, names in SHAPES_GROUPS.items():
        cols = [SHAPES_ATTRIBUTES.index(n) for n in names]
        out[group] = float((values[:, cols].argmax(1) == truth[:, cols].argmax(1)).float().mean())
    return out


def drawings_report(predictor: Any, per_class: int, methods: list[str]) -> dict[str, Any]:
    """Top-1 among the 36 classes and the pointing game on the test drawings."""
    from tests.drawings import draw_test_set

    drawings = draw_test_set(shapes_classes(), per_class=per_class)
    results = predictor.classify([d.image for d in drawings], top_k=1)
    unseen = {zeromamba_name for zeromamba_name, s in zip(predictor.class_names, predictor.seen.tolist()) if not s}
    correct = [r.label == d.name for r, d in zip(results, drawings)]
    on_unseen = [c for c, d in zip(correct, drawings) if d.name in unseen]
    names = predictor.attribute_names
    pointing: dict[str, Any] = {}
    for method in methods:
        records = []
        for d in drawings:
            prepared = predictor._prepare([d.image])[0]
            targets = [names.index(getattr(d, g)) for g in SHAPES_GROUPS]
            grid = attribute_maps(predictor.model, prepared.tensor[None], targets, method)[0]
            on_image = maps_on_image(grid, prepared.box, *d.image.size).numpy()
            records += [{"group": g, **score_map(on_image[k], d.mask)} for k, g in enumerate(SHAPES_GROUPS)]
        pointing[method] = summarise(method, records).to_dict()
    return {
        "drawings": len(drawings),
        "top1_all": float(np.mean(correct)),
        "top1_unseen_classes": float(np.mean(on_unseen)),
        "explanations": pointing,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["shapes-zsl"])
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--images", type=int, default=300, help="unseen-class images for the explanation metrics")
    ap.add_argument("--methods", default=",".join(EXPLAIN_METHODS))
    ap.add_argument("--per-class", type=int, default=3, help="test drawings per class")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    data = load_shapes(seed=args.seed)
    report: dict[str, Any] = {
        "benchmark": "shapes_demo",
        "machine": machine_info(),
        "seed": args.seed,
        "images": args.images,
        "models": {},
    }
    for name in args.models:
        t0 = time.perf_counter()
        predictor = zeromamba.from_pretrained(name)
        m = evaluate(predictor, data, split="test", device="cpu", batch_size=128, progress=False).metrics
        scores = evaluate_explanations(predictor, data, methods=methods, num_images=args.images)
        report["models"][name] = {
            "zsl": {k: getattr(m, k) for k in ("czsl", "unseen", "seen", "harmonic", "gamma")},
            "unseen_attribute_accuracy": group_accuracy(predictor, data),
            "explanations": {k: v.to_dict() for k, v in scores.items()},
            "test_drawings": drawings_report(predictor, args.per_class, methods),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
