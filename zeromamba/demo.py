"""``zeromamba demo``: zero-shot classification end to end, offline, in a few seconds on a CPU.

It uses the embedded ``shapes-zsl`` model (a :func:`~zeromamba.models.zeromamba.zeromamba_nano_s8`
trained by this project on the generated :mod:`~zeromamba.data.shapes` dataset, shipped inside the
package) and never touches the network:

1. draws a few images of **unseen** classes (classes the model never saw in training) with a
   fresh seed, and classifies them among all 36 classes with GZSL calibrated stacking (the
   model's gamma), printing a table of true class, prediction and score;
2. writes an explanation PNG for the first image (the image and the heat maps, occlusion by
   default, of the attributes that decided the class) and prints its path;
3. defines a class on the spot from an attribute vector (default ``green striped triangle``, a
   combination never shown in training), adds it to the seen classes and classifies an image
   drawn for it.

Python: :func:`run_demo` returns the same information as a dict (what ``--json`` prints).
"""

from __future__ import annotations

import os
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
    "draw_shape",
    "parse_attribute_words",
    "run_demo",
    "training_renderer",
]

DEMO_MODEL = "shapes-zsl"
DEFAULT_OUT = "zeromamba-demo.png"
#: the class the demo defines by its attributes: an unseen combination
DEFAULT_DEFINE = "green striped triangle"
# images of the demo come from seeds far from the training seed (0) and the test seeds
DEFAULT_SEED = 2025


def training_renderer(preprocess: dict[str, Any]) -> str:
    """The Shapes renderer a demo model was trained on, from its preprocessing: ``"plain"`` (the
    first renderer's square 64 px images, :mod:`~zeromamba.data.shapes_plain`) for a model that
    squashes its input, as the first demo model (``zeromamba_nano``) does; else ``"varied"``
    (today's :mod:`~zeromamba.data.shapes_draw`, canvases of any aspect ratio, for letterboxing models)."""
    return "plain" if preprocess.get("crop_mode", "squash") == "squash" else "varied"


def draw_shape(renderer: str, colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    """One image of the class ``(colour, fill, shape)`` drawn with ``rng`` by ``renderer``
    (``"plain"`` or ``"varied"``, see :func:`training_renderer`)."""
    if renderer == "plain":
        from .data.shapes_plain import draw_plain_sample

        return draw_plain_sample(colour, fill, shape, rng).image
    if renderer != "varied":
        raise ValueError(f"renderer must be 'plain' or 'varied', got {renderer!r}")
    from .data.shapes import render_shape

    return render_shape(colour, fill, shape, rng)


def demo_images(seed: int = DEFAULT_SEED, n: int = 6, renderer: str = "varied") -> list[tuple[str, Image.Image]]:
    """``n`` images of unseen Shapes classes (a different class for each while they last), drawn with
    ``seed`` by ``renderer`` (``"varied"`` or ``"plain"``, see :func:`training_renderer`).

    Returns ``(true class name, image)`` pairs; the same seed gives the same images.
    """
    from .data.shapes import class_name, class_role, shapes_classes

    unseen = [t for t in shapes_classes() if class_role(*t) == "unseen"]
    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(len(unseen))
    out = []
    for k in range(n):
        colour, fill, shape = unseen[int(order[k % len(order)])]
        img = draw_shape(renderer, colour, fill, shape, np.random.default_rng([seed, 2, k]))
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
    from .data.shapes import SHAPES_ATTRIBUTES
    from .factory import from_pretrained

    t0 = time.perf_counter()
    if n < 1:
        raise ZeroMambaError(f"--n must be at least 1 (got {n})")
    vector = parse_attribute_words(define)  # before the work: a typo fails at once
    predictor = from_pretrained(model, local_files_only=True)
    if predictor.attribute_names != list(SHAPES_ATTRIBUTES):
        raise ZeroMambaError(f"the demo needs a model trained on the shapes dataset; {model!r} is not one")
    renderer = training_renderer(predictor.preprocess)  # images like the ones the model learnt from
    samples = demo_images(seed, n, renderer)
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
    image = draw_shape(renderer, colour, fill, shape, np.random.default_rng([seed, 3]))
    seen_mask = [k != user_name for k in classes]
    defined = predictor.classify(image, attributes=classes, seen=seen_mask, top_k=3)
    in_training = any(predictor.class_names[i] == name for i in seen_idx)
    return {
        "model": model,
        "renderer": renderer,
        "gamma": predictor.gamma,
        "num_classes": predictor.num_classes,
        "num_seen": int(predictor.seen.sum()),
        "images": rows,
        "accuracy": sum(r["correct"] for r in rows) / len(rows),
        "explanation": str(path),
        "explanation_size": list(figure.size),
        "explained": {
            "true": samples[0][0],
            "attributes": list(explanation.attribute_names),
            "method": explanation.method,
        },
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
