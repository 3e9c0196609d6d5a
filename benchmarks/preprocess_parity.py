"""timm's own transform against zeromamba's preprocessing, on the same images, for the shipped model.

``timm.data.create_transform(**timm.data.resolve_data_config(model=model))`` on
``timm.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True)`` is compared with
``zeromamba.from_pretrained("shapes-zsl")``'s own preprocessing (``predictor.transform``), both fed to
the same predictor, on:

* ``--per-class`` generated Shapes test images of each of the 36 classes (seed ``--seed``);
* the same images with the object made small: each pasted in the middle of a canvas ``--shrink``
  times its size, filled with its border colour (the object at 1/shrink of its extent);

and, for the record, the preprocessing the shipped model had before (``letterbox``: padded with the
border colour instead of the mean colour). For each: top-1 among the 36 classes as ``classify`` ranks
them, the largest difference of any input value and of any calibrated score from zeromamba's own.
timm has no step for the object framing (``object_extent``): the small-object rows measure what
that costs.

Prints JSON (``--out`` also writes it). Example::

    python benchmarks/preprocess_parity.py --out benchmarks/results/preprocess_parity_$(date +%F).json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import timm
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import zeromamba  # noqa: E402
from zeromamba.data.shapes import load_shapes  # noqa: E402
from zeromamba.images import ImageTransform  # noqa: E402
from zeromamba.letterbox import border_colour  # noqa: E402


def environment() -> dict[str, Any]:
    """The CPU (model, ISA flags), compiler, library versions and load average of this run."""
    info: dict[str, Any] = {"date": datetime.date.today().isoformat(), "machine": platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line)
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        info["isa_flags"] = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))
    except (OSError, StopIteration):
        info["cpu_model"] = platform.processor() or "unknown"
    try:
        info["compiler"] = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        info["compiler"] = "none found"
    info.update(
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu_count=os.cpu_count(),
        loadavg=Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
        torch=torch.__version__,
        timm=timm.__version__,
        pillow=PIL.__version__,
        zeromamba=zeromamba.__version__,
    )
    return info


def small_object(image: Image.Image, shrink: float) -> Image.Image:
    """``image`` in the middle of a canvas ``shrink`` times its size, filled with its border colour."""
    w, h = image.size
    canvas = Image.new("RGB", (round(w * shrink), round(h * shrink)), border_colour(image))
    canvas.paste(image, ((canvas.width - w) // 2, (canvas.height - h) // 2))
    return canvas


def scores(predictor: zeromamba.Predictor, inputs: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(top-1 class index, raw class scores, calibrated scores)`` per image, as ``classify`` ranks them."""
    results = predictor.classify(list(inputs), top_k=None)
    raw, calibrated = np.zeros((2, len(results), predictor.num_classes))
    for i, r in enumerate(results):
        raw[i, r.indices] = r.scores
        calibrated[i, r.indices] = r.calibrated if r.calibrated is not None else r.probabilities
    return np.array([r.index for r in results]), raw, calibrated


def compare(
    name: str, predictor: zeromamba.Predictor, images: list[Image.Image], labels: np.ndarray, transforms: dict
) -> dict[str, Any]:
    inputs = {k: torch.stack([t(im) for im in images]) for k, t in transforms.items()}
    ref_top, ref_raw, ref_calibrated = scores(predictor, inputs["zeromamba"])
    row: dict[str, Any] = {"images": len(images), "top1": {"zeromamba": float((ref_top == labels).mean())}}
    for key, x in inputs.items():
        if key == "zeromamba":
            continue
        top, raw, calibrated = scores(predictor, x)
        row["top1"][key] = float((top == labels).mean())
        row.setdefault("top1_agreement_with_zeromamba", {})[key] = float((top == ref_top).mean())
        row.setdefault("max_input_difference", {})[key] = float((x - inputs["zeromamba"]).abs().max())
        row.setdefault("max_class_score_difference", {})[key] = float(np.abs(raw - ref_raw).max())
        row.setdefault("max_calibrated_score_difference", {})[key] = float(np.abs(calibrated - ref_calibrated).max())
    # timm's transform is zeromamba's without the framing step: the same tensors, bit for bit
    timm_x, plain_x = inputs["timm create_transform"], inputs["zeromamba without framing"]
    _, timm_raw, _ = scores(predictor, timm_x)
    _, plain_raw, _ = scores(predictor, plain_x)
    row["timm_vs_zeromamba_without_framing"] = {
        "max_input_difference": float((timm_x - plain_x).abs().max()),
        "max_class_score_difference": float(np.abs(timm_raw - plain_raw).max()),
    }
    framed = [i for i, im in enumerate(images) if not torch.equal(plain_x[i], inputs["zeromamba"][i])]
    row["images_framed"] = len(framed)
    print(name, json.dumps(row), file=sys.stderr)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--shrink", type=float, default=3.0)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    predictor = zeromamba.from_pretrained("shapes-zsl")
    model = timm.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True).eval()
    config = timm.data.resolve_data_config(model=model)
    transforms = {
        "zeromamba": predictor.transform,
        "timm create_transform": timm.data.create_transform(**config),
        "zeromamba without framing": ImageTransform({**predictor.preprocess, "object_extent": None}),
        "letterbox (previous padding), framing": ImageTransform({**predictor.preprocess, "crop_mode": "letterbox"}),
    }
    data = load_shapes(
        seed=args.seed, train_per_class=1, test_seen_per_class=args.per_class, test_unseen_per_class=args.per_class
    )
    indices = np.concatenate([data.splits["test_seen"], data.splits["test_unseen"]])
    images = [data.render(int(i)) for i in indices]
    labels = data.labels[indices]
    report = {
        "what": "timm.data.create_transform(**resolve_data_config(model=timm.create_model('zeromamba_nano_s8."
        "shapes_zsl', pretrained=True))) against zeromamba.from_pretrained('shapes-zsl').transform, fed to the "
        "same predictor; top-1 among 36 classes, calibrated scores",
        "timm_data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
        "zeromamba_preprocess": {k: list(v) if isinstance(v, tuple) else v for k, v in predictor.preprocess.items()},
        "seed": args.seed,
        "shrink": args.shrink,
        "shapes_test_images": compare("shapes", predictor, images, labels, transforms),
        "small_objects": compare(
            "small", predictor, [small_object(im, args.shrink) for im in images], labels, transforms
        ),
        "environment": environment(),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
