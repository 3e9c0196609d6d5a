"""The Shapes demo model(s) on freshly drawn images in styles the training renderer never uses.

The styles are evaluation-only drawing routines (``tests/drawing_styles.py``: finer and coarser
marks, hand-drawn outlines and strokes, wavy stripes and scattered dots, tinted marks, pixel art,
heavy noise and JPEG, coloured and textured paper, shading and shadows, extreme placement, a
photographed page, watercolour washes), plus
the test drawings' hand (``tests/drawings.py``) and the training renderer itself on a fresh seed
for reference. Every image is drawn with seeds no training run uses, once, and every model sees the
same images. For each model and style, as ``classify`` answers (top-1 among all 36 classes, GZSL
calibrated stacking at the model's gamma, the model's own preprocessing):

* top-1 on all images and on the unseen-class images;
* per attribute group (colour, fill, shape): how often the named class has the right value, and how
  often the predicted attribute vector's highest value in the group is right (all images, and
  the unseen-class images);
* the low-confidence flag: the share of wrong answers flagged (a confident wrong answer is worse
  than a flagged one), the share of right answers flagged (the flag's cost), and the fill confusion.

Totals pool the fresh styles (not the reference sets). Prints JSON (``--out`` also writes it)::

    python benchmarks/shapes_styles.py --models shapes-zsl runs/new/model --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import zeromamba  # noqa: E402
from zeromamba.data.shapes import SHAPES_GROUPS, UNSEEN_CLASSES, class_name, load_shapes, shapes_classes  # noqa: E402

GROUP_POSITION = {"colour": 0, "fill": 1, "shape": 2}  # in a class's (colour, fill, shape)


def environment() -> dict[str, Any]:
    """The machine the figures come from (accuracy does not depend on it; numerics can, a little)."""
    model, flags = "unknown", []
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        all_flags = next(line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags"))
        flags = sorted(f for f in all_flags if f.startswith(("avx", "amx", "fma", "sse4")))
    except (OSError, StopIteration):
        pass
    config = torch.__config__.show()
    compiler = config.split("CXX_COMPILER=", 1)[1].split(",", 1)[0] if "CXX_COMPILER=" in config else "unknown"
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": model,
        "isa_flags": flags,
        "torch_built_with": compiler,
        "python_compiler": platform.python_compiler(),
        "torch": torch.__version__,
        "zeromamba": zeromamba.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
    }


def image_sets(per_class: int, seed: int, shapes_seed: int, styles: list[str]) -> dict[str, list[tuple[Any, tuple]]]:
    """``style -> [(image, (colour, fill, shape))]``: the fresh styles, then the reference sets."""
    from tests.drawing_styles import style_set
    from tests.drawings import draw_test_set

    classes = shapes_classes()
    sets = {style: style_set(style, classes, per_class, seed) for style in styles}
    drawings = draw_test_set(classes, per_class=per_class, seed=seed)
    sets["ref:drawings_hand"] = [(d.image, (d.colour, d.fill, d.shape)) for d in drawings]
    data = load_shapes(
        seed=shapes_seed, train_per_class=1, test_seen_per_class=per_class, test_unseen_per_class=per_class
    )
    idx = np.concatenate([data.splits["test_seen"], data.splits["test_unseen"]])
    sets["ref:training_renderer"] = [(data.render(int(i)), classes[int(data.labels[i])]) for i in idx]
    return sets


def score_set(predictor: Any, items: list[tuple[Any, tuple]]) -> dict[str, Any]:
    """Answers, attribute predictions and flags of one model on one set, as per-image arrays."""
    images = [im for im, _ in items]
    results = predictor.classify(images, top_k=2, batch_size=128)
    attributes = np.array([a.values for a in predictor.predict_attributes(images, batch_size=128)])
    names = predictor.attribute_names
    truth = [t for _, t in items]
    answer = [tuple(r.label.split(" ")) for r in results]
    record: dict[str, Any] = {
        "unseen": np.array([t in UNSEEN_CLASSES for t in truth]),
        "correct": np.array([a == t for a, t in zip(answer, truth)]),
        "flagged": np.array([r.low_confidence for r in results]),
        "true_fill": [t[1] for t in truth],
        "named_fill": [a[1] if len(a) == 3 else "?" for a in answer],
    }
    for group, values in SHAPES_GROUPS.items():
        pos = GROUP_POSITION[group]
        cols = [names.index(v) for v in values]
        predicted = [values[k] for k in attributes[:, cols].argmax(1)]
        record[f"answer_{group}"] = np.array([len(a) == 3 and a[pos] == t[pos] for a, t in zip(answer, truth)])
        record[f"attribute_{group}"] = np.array([p == t[pos] for p, t in zip(predicted, truth)])
    return record


def _share(x: np.ndarray) -> float | None:
    return round(float(x.mean()), 4) if x.size else None


def summarise(rec: dict[str, Any]) -> dict[str, Any]:
    """The figures of one set (or of several pooled)."""
    correct, flagged, unseen = rec["correct"], rec["flagged"], rec["unseen"]
    wrong = ~correct
    out: dict[str, Any] = {
        "images": int(correct.size),
        "unseen_class_images": int(unseen.sum()),
        "top1_all": _share(correct),
        "top1_unseen_classes": _share(correct[unseen]),
        "top1_seen_classes": _share(correct[~unseen]),
        "answer_group_accuracy": {g: _share(rec[f"answer_{g}"]) for g in SHAPES_GROUPS},
        "answer_group_accuracy_unseen": {g: _share(rec[f"answer_{g}"][unseen]) for g in SHAPES_GROUPS},
        "attribute_group_accuracy": {g: _share(rec[f"attribute_{g}"]) for g in SHAPES_GROUPS},
        "attribute_group_accuracy_unseen": {g: _share(rec[f"attribute_{g}"][unseen]) for g in SHAPES_GROUPS},
        "wrong": int(wrong.sum()),
        "wrong_flagged": _share(flagged[wrong]),
        "right_flagged": _share(flagged[correct]),
        "flagged_share": _share(flagged),
        "confident_wrong_share": _share(wrong & ~flagged),
    }
    fills = SHAPES_GROUPS["fill"]
    out["fill_confusion_true_by_answer"] = {
        t: {a: int(sum(1 for x, y in zip(rec["true_fill"], rec["named_fill"]) if x == t and y == a)) for a in fills}
        for t in fills
    }
    return out


def pooled(records: list[dict[str, Any]]) -> dict[str, Any]:
    keys = records[0].keys()
    return {
        k: (
            sum((r[k] for r in records), [])
            if isinstance(records[0][k], list)
            else np.concatenate([r[k] for r in records])
        )
        for k in keys
    }


def main() -> None:
    from tests.drawing_styles import STYLES

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["shapes-zsl"], help="zoo names or model folders")
    ap.add_argument("--labels", nargs="+", default=None, help="a name for each model in the report")
    ap.add_argument("--per-class", type=int, default=10, help="images of each of the 36 classes per style")
    ap.add_argument("--seed", type=int, default=2612, help="drawing seed of the styles and the drawings' hand")
    ap.add_argument("--shapes-seed", type=int, default=8080, help="seed of the training renderer's reference set")
    ap.add_argument("--styles", default=",".join(STYLES))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--note", default=None, help="a sentence kept in the JSON (what was measured and why)")
    ap.add_argument(
        "--within-training",
        action="append",
        default=[],
        metavar="STYLE=WHY",
        help="a style some model's training covers (why, in words): kept apart, the others pooled "
        "as outside_training_ranges_pooled (repeatable)",
    )
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    labels = args.labels or args.models
    if len(labels) != len(args.models):
        ap.error("--labels needs one name per model")
    styles = args.styles.split(",")
    within: dict[str, str] = {}
    for item in args.within_training:
        style, sep, why = item.partition("=")
        if not sep or style not in styles or not why.strip():
            ap.error(f"--within-training takes STYLE=WHY with STYLE one of --styles, got {item!r}")
        within[style] = why.strip()
    outside = [s for s in styles if s not in within]
    t0 = time.perf_counter()
    sets = image_sets(args.per_class, args.seed, args.shapes_seed, styles)
    report: dict[str, Any] = {
        "environment": environment(),
        "seeds": {"styles": args.seed, "drawings_hand": args.seed, "training_renderer_reference": args.shapes_seed},
        "training_seeds": "shapes seed 0 (class images and swatches); no evaluation seed here is used in training",
        "per_class": args.per_class,
        "styles": styles,
        "unseen_classes": [class_name(*t) for t in UNSEEN_CLASSES],
        "drawing_seconds": round(time.perf_counter() - t0, 1),
        "models": {},
    }
    if within:
        report["styles_within_training_ranges"] = within
    for name, label in zip(args.models, labels):
        predictor = zeromamba.from_pretrained(name)
        records = {style: score_set(predictor, items) for style, items in sets.items()}
        fresh = pooled([records[s] for s in styles])
        report["models"][label] = {
            "source": name,
            "gamma": predictor.gamma,
            "preprocess": {
                k: v for k, v in predictor.preprocess.items() if k in ("input_size", "crop_mode", "object_extent")
            },
            "fresh_styles_pooled": summarise(fresh),
            "per_style": {s: summarise(r) for s, r in records.items()},
        }
        if within and outside:
            report["models"][label]["styles_outside_training_ranges"] = outside
            report["models"][label]["outside_training_ranges_pooled"] = summarise(pooled([records[s] for s in outside]))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if args.note:
        report["note"] = args.note
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.out:
        from zeromamba.fileio import write_text

        write_text(Path(args.out), text + "\n")
    for label, m in report["models"].items():
        for key, what in (("fresh_styles_pooled", "fresh styles"), ("outside_training_ranges_pooled", "outside")):
            if key not in m:
                continue
            p = m[key]
            print(
                f"{label}: {what} top-1 all {p['top1_all']:.3f} unseen {p['top1_unseen_classes']:.3f}; "
                f"answer colour/fill/shape {p['answer_group_accuracy']}; wrong flagged {p['wrong_flagged']}",
                file=sys.stderr,
            )
        for s, r in m["per_style"].items():
            g = r["answer_group_accuracy"]
            print(
                f"  {s:24s} all {r['top1_all']:.3f} unseen {r['top1_unseen_classes']:.3f} "
                f"c/f/s {g['colour']:.3f}/{g['fill']:.3f}/{g['shape']:.3f} wrong flagged {r['wrong_flagged']}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
