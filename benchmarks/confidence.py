"""How well the low-confidence flag separates right answers from wrong ones, on the shipped model.

For each image the predictor ranks its 36 classes (calibrated GZSL, as ``classify`` does); the
script records whether the top-1 is right and the two numbers the low-confidence rule reads
(:mod:`zeromamba.confidence`): the top class's probability (against 5 x chance) and its lead over
the second class in the ranking value (against 0.05), and whether ``classify`` flagged it. Sets:

* ``shapes:<seed>`` test images (27 x 50 seen-class, 9 x 100 unseen-class), the training renderer;
* the test drawings (``tests/drawings.py``: another hand, 3 per class);
* small objects: the test drawings pasted at their size onto a canvas 2.5-4 x larger (radius
  0.06-0.16 of the shorter side; training: 0.2-0.36 of the longer side), which the model mostly
  gets wrong;
* a user's photo: a blue (and a grey) circle 2000 px wide on 6000 x 4000;
* objects in colours the model does not know (grey, black, purple, orange, brown, pink, cyan,
  white on grey): every answer is wrong, the flag should fire.

For every set: accuracy among flagged and unflagged answers, and the share flagged, with the
shipped preprocessing and without its object framing (``object_extent``, :mod:`zeromamba.framing`); for the rule's
thresholds on a grid, the same on ``shapes:<seed>`` (to show why the defaults were chosen). Prints
JSON (``--out`` also writes it)::

    python benchmarks/confidence.py --seed 4242 --out benchmarks/results/confidence_2026-12-02.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_info
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import zeromamba  # noqa: E402
from zeromamba.confidence import MIN_MARGIN, near_chance_threshold  # noqa: E402
from zeromamba.data.shapes import load_shapes, shapes_classes  # noqa: E402

OTHER_COLOURS = ["grey", "#808080", "black", "purple", "orange", "saddlebrown", "hotpink", "cyan", "white"]


def other_colour_images(n: int, seed: int) -> list[Image.Image]:
    """Solid circles, triangles and bars in colours none of the classes has, on light backgrounds."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        w, h = rnd.choice([(300, 200), (256, 256), (200, 300), (400, 250)])
        colour = OTHER_COLOURS[i % len(OTHER_COLOURS)]
        background = "#bbbbbb" if colour == "white" else rnd.choice(["white", "#fafafa", "ivory"])
        img = Image.new("RGB", (w, h), background)
        draw = ImageDraw.Draw(img)
        r = min(w, h) * rnd.uniform(0.25, 0.4)
        cx, cy = w / 2 + rnd.uniform(-0.1, 0.1) * w, h / 2 + rnd.uniform(-0.1, 0.1) * h
        shape = ("circle", "triangle", "bar")[(i // len(OTHER_COLOURS)) % 3]
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        elif shape == "triangle":
            draw.polygon(
                [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)],
                fill=colour,
            )
        else:
            draw.rectangle([cx - r, cy - 0.4 * r, cx + r, cy + 0.4 * r], fill=colour)
        out.append(img)
    return out


def small_object_images(seed: int) -> tuple[list[Image.Image], list[str]]:
    """One drawing of each class in the test drawings' hand, its object shrunk to a small radius."""
    import tests.drawings as drawings

    rnd = random.Random(seed)
    images, names = [], []
    original = drawings.draw_one
    for colour, fill, shape in shapes_classes():
        # the drawings' routine picks r = min(w, h) * U(0.25, 0.4); draw on a canvas 2.5-4 x larger
        # and keep the object at its drawn size: r becomes 0.06-0.16 of the shorter side
        d = original(colour, fill, shape, rnd)
        w, h = d.image.size
        factor = rnd.uniform(2.5, 4.0)
        bg = d.image.getpixel((0, 0))
        canvas = Image.new("RGB", (round(w * factor), round(h * factor)), bg)
        canvas.paste(d.image, (round((canvas.width - w) * rnd.random()), round((canvas.height - h) * rnd.random())))
        images.append(canvas)
        names.append(d.name)
    return images, names


def signals_of(predictor: Any, images: list[Any]) -> dict[str, np.ndarray]:
    """classify's answers: top class, its probability, its lead over the second, the flag."""
    results = predictor.classify(images, top_k=2, batch_size=64)
    lead = [(r.calibrated or r.probabilities)[0] - (r.calibrated or r.probabilities)[1] for r in results]
    return {
        "top": np.array([r.index for r in results]),
        "probability": np.array([r.probability for r in results]),
        "margin": np.array(lead),
        "flagged": np.array([r.low_confidence for r in results]),
    }


def summary(correct: np.ndarray | None, flagged: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {
        "images": int(flagged.size),
        "flagged": int(flagged.sum()),
        "flagged_share": float(flagged.mean()),
    }
    if correct is not None:
        out["accuracy_all"] = float(correct.mean())
        out["accuracy_flagged"] = float(correct[flagged].mean()) if flagged.any() else None
        out["accuracy_unflagged"] = float(correct[~flagged].mean()) if (~flagged).any() else None
        out["wrong_caught"] = float(flagged[~correct].mean()) if (~correct).any() else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="shapes-zsl")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    predictor = zeromamba.from_pretrained(args.model)
    names = predictor.class_names
    chance_bar = near_chance_threshold(len(names))
    rule = {"near_chance_below": chance_bar, "min_margin": MIN_MARGIN}

    # the same model without the object framing (zeromamba.framing), as it was first shipped
    unframed = zeromamba.Predictor(
        predictor.model,
        class_attributes=predictor.class_attributes,
        class_names=names,
        seen=predictor.seen,
        gamma=predictor.gamma,
        preprocess={**predictor.preprocess, "object_extent": None},
    )

    def evaluate_set(images: list[Any], truth: list[str] | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        sig = signals_of(predictor, images)
        before = signals_of(unframed, images)
        flagged = sig["flagged"]
        # the flag is classify's own; recomputed from its two numbers it must agree
        assert np.array_equal(flagged, (sig["probability"] < chance_bar) | (sig["margin"] < MIN_MARGIN))
        correct = None if truth is None else np.array([names[i] == t for i, t in zip(sig["top"], truth)])
        res = summary(correct, flagged)
        if truth is not None:
            res["accuracy_without_framing"] = float(np.mean([names[i] == t for i, t in zip(before["top"], truth)]))
        res["flagged_share_without_framing"] = float(before["flagged"].mean())
        res["near_chance_only"] = summary(correct, sig["probability"] < chance_bar)
        res["ambiguous_only"] = summary(correct, sig["margin"] < MIN_MARGIN)
        res["probability_quantiles_5_25_50"] = [float(q) for q in np.quantile(sig["probability"], [0.05, 0.25, 0.5])]
        res["margin_quantiles_5_25_50"] = [float(q) for q in np.quantile(sig["margin"], [0.05, 0.25, 0.5])]
        return res, {**sig, "correct": correct if correct is not None else np.zeros(0, bool)}

    data = load_shapes(args.seed)
    idx = np.concatenate([data.splits["test_seen"], data.splits["test_unseen"]])
    shapes_images = [data.render(int(i)) for i in idx]
    shapes_truth = [data.class_names[data.labels[i]] for i in idx]
    report: dict[str, Any] = {
        "benchmark": "confidence",
        "machine": machine_info(),
        "model": args.model,
        "seed": args.seed,
        "rule": rule,
        "sets": {},
    }
    report["sets"][f"shapes:{args.seed}"], sig = evaluate_set(shapes_images, shapes_truth)
    grid = []
    for m in (0.0, 0.03, 0.05, 0.08, 0.1, 0.15):
        for k in (0.0, 3.0, 5.0, 7.0):
            flagged = (sig["margin"] < m) | (sig["probability"] < k / len(names))
            grid.append({"min_margin": m, "chance_factor": k, **summary(sig["correct"], flagged)})
    report["grid_on_shapes"] = grid

    from tests.drawings import draw_test_set

    drawings = draw_test_set(shapes_classes(), per_class=3)
    report["sets"]["drawings"], _ = evaluate_set([d.image for d in drawings], [d.name for d in drawings])
    small, small_names = small_object_images(args.seed)
    report["sets"]["small_objects"], _ = evaluate_set(small, small_names)
    report["sets"]["other_colours"], other = evaluate_set(other_colour_images(54, args.seed), None)
    report["sets"]["other_colours"]["flagged_by_colour"] = {
        c: float(other["flagged"][i :: len(OTHER_COLOURS)].mean()) for i, c in enumerate(OTHER_COLOURS)
    }
    report["sets"]["other_colours"]["named_as"] = {
        c: sorted({names[t] for t in other["top"][i :: len(OTHER_COLOURS)]}) for i, c in enumerate(OTHER_COLOURS)
    }
    photos = []
    for colour in ("blue", "grey"):
        photo = Image.new("RGB", (6000, 4000), "white")
        ImageDraw.Draw(photo).ellipse((2000, 1000, 4000, 3000), fill=colour)
        photos.append(photo)
    for name, model in (("framed", predictor), ("without_framing", unframed)):
        report.setdefault("issue_photo", {})[name] = [r.to_record() for r in model.classify(photos, top_k=2)]
    report["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
