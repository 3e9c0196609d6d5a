"""``zeromamba demo``: zero-shot classification end to end, offline, in a few seconds on a CPU.

It uses the embedded ``shapes-zsl`` model (a :func:`~zeromamba.models.zeromamba.zeromamba_nano`
trained by this project on the generated :mod:`~zeromamba.data.shapes` dataset, shipped inside the
package) and never touches the network:

1. draws a few images of **unseen** classes (classes the model never saw in training) with a
   fresh seed, and classifies them among all 36 classes with GZSL calibrated stacking (the
   model's gamma), printing a table of true class, prediction and score;
2. writes an explanation PNG for the first image (the image and the attention maps of the
   attributes that decided the class) and prints its path;
3. defines a class on the spot from an attribute vector (default ``green striped triangle``, a
   combination never shown in training), adds it to the seen classes and classifies an image
   drawn for it.

Python: :func:`run_demo` returns the same information as a dict (what ``--json`` prints).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import ZeroMambaError

__all__ = [
    "DEFAULT_DEFINE",
    "DEFAULT_OUT",
    "DEMO_MODEL",
    "demo_images",
    "parse_attribute_words",
    "register_cli",
    "run_demo",
]

DEMO_MODEL = "shapes-zsl"
DEFAULT_OUT = "zeromamba-demo.png"
#: the class the demo defines by its attributes: an unseen combination
DEFAULT_DEFINE = "green striped triangle"
# images of the demo come from seeds far from the training seed (0) and the test seeds
DEFAULT_SEED = 2025


def demo_images(seed: int = DEFAULT_SEED, n: int = 6) -> list[tuple[str, Image.Image]]:
    """``n`` images of unseen Shapes classes (a different class for each while they last), drawn with ``seed``.

    Returns ``(true class name, image)`` pairs; the same seed gives the same images.
    """
    from .data.shapes import class_name, class_role, render_shape, shapes_classes

    unseen = [t for t in shapes_classes() if class_role(*t) == "unseen"]
    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(len(unseen))
    out = []
    for k in range(n):
        colour, fill, shape = unseen[int(order[k % len(order)])]
        img = render_shape(colour, fill, shape, np.random.default_rng([seed, 2, k]))
        out.append((class_name(colour, fill, shape), img))
    return out


def parse_attribute_words(text: str) -> dict[str, float]:
    """``"blue striped square"`` or ``"blue,striped,square"`` -> ``{"blue": 1, "striped": 1, "square": 1}``.

    Raises:
        ZeroMambaError: a word that is not an attribute, or not one value of each attribute group.
    """
    from .data.shapes import COLOURS, FILLS, SHAPES

    words = [w for w in text.replace(",", " ").lower().split() if w]
    vector: dict[str, float] = {}
    for group, values in (("colour", COLOURS), ("fill", FILLS), ("shape", SHAPES)):
        chosen = [w for w in words if w in values]
        if len(chosen) != 1:
            raise ZeroMambaError(f"define a class with exactly one {group} ({', '.join(values)}); got {text!r}")
        vector[chosen[0]] = 1.0
    unknown = [w for w in words if w not in vector]
    if unknown:
        raise ZeroMambaError(f"unknown attribute words {unknown}; use {', '.join(COLOURS + FILLS + SHAPES)}")
    return vector


def _default_out() -> Path:
    # the current folder when it is writable, else the temporary folder
    here = Path.cwd()
    return here / DEFAULT_OUT if os.access(here, os.W_OK) else Path(tempfile.gettempdir()) / DEFAULT_OUT


def run_demo(
    seed: int = DEFAULT_SEED,
    n: int = 6,
    out: str | os.PathLike | None = None,
    define: str = DEFAULT_DEFINE,
    model: str = DEMO_MODEL,
) -> dict[str, Any]:
    """Run the demo (see the module docstring) and return what it found.

    Returns:
        ``{"model", "gamma", "images": [{"true", "predicted", "probability", "calibrated",
        "correct"}], "accuracy", "explanation": path, "explanation_size": [w, h],
        "defined": {...}, "seconds"}``.
    """
    from . import from_pretrained
    from .data.shapes import SHAPES_ATTRIBUTES, render_shape

    t0 = time.perf_counter()
    if n < 1:
        raise ZeroMambaError(f"--n must be at least 1 (got {n})")
    vector = parse_attribute_words(define)  # before the work: a typo fails at once
    predictor = from_pretrained(model, local_files_only=True)
    if predictor.attribute_names != list(SHAPES_ATTRIBUTES):
        raise ZeroMambaError(f"the demo needs a model trained on the shapes dataset; {model!r} is not one")
    samples = demo_images(seed, n)
    results = predictor.classify([img for _, img in samples], top_k=3)
    rows = []
    for (true, _), res in zip(samples, results):
        rows.append(
            {
                "true": true,
                "predicted": res.label,
                "probability": float(res.probability),
                "calibrated": float(res.calibrated[0]) if res.calibrated else None,
                "seen": bool(res.seen[0]) if res.seen else None,
                "correct": res.label == true,
            }
        )

    # the explanation: top attributes of the predicted class = its colour, fill and shape
    path = Path(out) if out is not None else _default_out()
    path.parent.mkdir(parents=True, exist_ok=True)
    explanation = predictor.explain(samples[0][1], top_k=3)
    figure = explanation.save_png(path)

    # a class defined on the spot by its attribute vector, among the seen classes
    name = " ".join(vector)
    assert predictor.class_attributes is not None and predictor.seen is not None and predictor.class_names
    seen_idx = torch.nonzero(predictor.seen).flatten().tolist()
    names = predictor.class_names
    classes = {names[i]: predictor.class_attributes[i] for i in seen_idx if names[i] != name}
    row = torch.tensor([vector.get(a, 0.0) for a in SHAPES_ATTRIBUTES])
    user_name = f"my class: {name}"
    classes[user_name] = row
    colour, fill, shape = (next(a for a in vector if a in group) for group in _groups())
    image = render_shape(colour, fill, shape, np.random.default_rng([seed, 3]))
    seen_mask = [k != user_name for k in classes]
    defined = predictor.classify(image, attributes=classes, seen=seen_mask, top_k=3)
    in_training = any(predictor.class_names[i] == name for i in seen_idx)
    return {
        "model": model,
        "gamma": predictor.gamma,
        "num_classes": predictor.num_classes,
        "num_seen": int(predictor.seen.sum()),
        "images": rows,
        "accuracy": sum(r["correct"] for r in rows) / len(rows),
        "explanation": str(path),
        "explanation_size": list(figure.size),
        "explained": {"true": samples[0][0], "attributes": list(explanation.attribute_names)},
        "defined": {
            "name": user_name,
            "attributes": vector,
            "seen_in_training": in_training,
            "candidates": len(classes),
            "predicted": defined.label,
            "probability": float(defined.probability),
            "top3": list(defined.names),
            "recognised": defined.label == user_name,
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _groups() -> tuple[tuple[str, ...], ...]:
    from .data.shapes import COLOURS, FILLS, SHAPES

    return COLOURS, FILLS, SHAPES


def _print_report(r: dict[str, Any]) -> None:
    print(
        f"zeromamba demo: model {r['model']!r}{' (embedded, offline)' if r['model'] == DEMO_MODEL else ''}, "
        f"{r['num_classes']} classes "
        f"({r['num_seen']} seen, {r['num_classes'] - r['num_seen']} unseen), "
        f"GZSL calibrated stacking with gamma {r['gamma']:g}\n"
    )
    print("Images of UNSEEN classes (never shown in training):")
    header = ("#", "true class", "prediction", "prob", "")
    table = [header] + [
        (str(i + 1), x["true"], x["predicted"], f"{x['probability']:.2f}", "ok" if x["correct"] else "WRONG")
        for i, x in enumerate(r["images"])
    ]
    widths = [max(len(row[c]) for row in table) for c in range(len(header))]
    for k, row in enumerate(table):
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))
    correct = sum(x["correct"] for x in r["images"])
    print(f"  {correct} of {len(r['images'])} correct\n")
    e = r["explained"]
    print(
        f"Explanation of image 1 ({e['true']}): attention maps of {', '.join(e['attributes'])}\n"
        f"  written to {r['explanation']}\n"
    )
    d = r["defined"]
    attrs = " + ".join(d["attributes"])
    novelty = "a combination never shown in training" if not d["seen_in_training"] else "a training class"
    print(f"A class defined on the spot by its attributes ({attrs}; {novelty}),")
    print(f"added to the {d['candidates'] - 1} seen classes; an image drawn for it is classified as:")
    verdict = "recognised" if d["recognised"] else "NOT recognised"
    print(f"  {d['predicted']}  (p = {d['probability']:.2f})  -> {verdict}")
    print(f"  runner-up: {', '.join(d['top3'][1:])}")
    print(f"\ndone in {r['seconds']:.1f} s")


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``zeromamba demo``."""
    p = subparsers.add_parser(
        "demo",
        help="zero-shot classification of unseen classes with the embedded shapes model (offline)",
        description="Classify generated images of classes the embedded model never saw in training, write an "
        "explanation PNG, and recognise a class defined on the spot by its attributes. No network, no download.",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the images (default {DEFAULT_SEED})")
    p.add_argument("--n", type=int, default=6, help="how many images of unseen classes (default 6)")
    p.add_argument(
        "--out",
        help=f"explanation PNG (default ./{DEFAULT_OUT}, or the temporary folder when . is not writable)",
    )
    p.add_argument(
        "--define",
        default=DEFAULT_DEFINE,
        help=f"the class to define by its attributes: a colour, a fill and a shape (default {DEFAULT_DEFINE!r})",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_cli_demo)


def _cli_demo(args: argparse.Namespace) -> int:
    result = run_demo(seed=args.seed, n=args.n, out=args.out, define=args.define)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        _print_report(result)
    return 0
