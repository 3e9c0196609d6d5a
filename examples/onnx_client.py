#!/usr/bin/env python3
"""Classify images with a model that ``zeromamba export`` wrote, with ONNX Runtime, NumPy and Pillow
only (no torch, no zeromamba): every preprocessing step is read from the folder's preprocess.json.

    pip install onnxruntime numpy pillow
    python examples/onnx_client.py MODEL_DIR IMAGE...

Prints one JSON line per image: ``{"image": ..., "class": ..., "scores": {class name: score}}``, the
scores being what zeromamba ranks by (calibrated scores when the model has them, else class scores
or logits), best first. An image that cannot be read is reported on stderr (exit status 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def border_median(pixels: np.ndarray) -> tuple[int, int, int]:
    """Per-channel median of the outermost rows and columns (first row, last row, first column, last column)."""
    edge = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return tuple(int(v) for v in np.round(np.median(edge, axis=0)))


def decode(path: str, step: dict) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        if step["exif_orientation"]:
            try:
                image = ImageOps.exif_transpose(image)
            except Exception:  # an unreadable EXIF block: the stored orientation
                pass
        return image.copy()


def to_rgb(image: Image.Image, step: dict) -> Image.Image:
    mode = image.mode
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (*step["alpha_background"], 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.float64) / step["sixteen_bit_divisor"]
        return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        values = values * 255.0 if values.size and values.max() <= 1.0 else values
        return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def frame_object(image: Image.Image, step: dict) -> Image.Image:
    w, h = image.size
    longer = max(w, h)
    copy = image
    if longer > step["detect_side"]:
        s = step["detect_side"] / longer
        copy = image.resize((max(1, round(w * s)), max(1, round(h * s))), FILTERS[step["detect_interpolation"]])
    pixels = np.asarray(copy, dtype=np.int16)
    colour = border_median(pixels)
    mask = np.abs(pixels - np.asarray(colour, dtype=np.int16)).max(axis=-1) > step["threshold"]
    if not mask.any() or mask.mean() > step["max_foreground"]:
        return image
    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        return image
    rows, cols = np.nonzero(mask)
    sx, sy = w / copy.width, h / copy.height
    x0, y0, x1, y1 = cols.min() * sx, rows.min() * sy, (cols.max() + 1) * sx, (rows.max() + 1) * sy
    half = max(x1 - x0, y1 - y0) / 2
    if half / longer >= step["smallest"]:
        return image
    side = max(1, round(half / step["target"]))
    left, top = round((x0 + x1) / 2 - side / 2), round((y0 + y1) / 2 - side / 2)
    frame = Image.new("RGB", (side, side), colour)
    frame.paste(image, (-left, -top))  # what falls outside the frame is clipped
    return frame


def resize(image: Image.Image, step: dict) -> Image.Image:
    w, h = image.size
    op = step["op"]
    if op == "resize":
        size = (step["box_width"], step["box_height"])
    elif op == "resize_shorter":
        n = step["size"]
        size = (n, max(n, int(n * h / w))) if w <= h else (max(n, int(n * w / h)), n)
    else:  # resize_to_fit / resize_to_cover
        pick = max if op == "resize_to_fit" else min
        ratio = pick(h / step["box_height"], w / step["box_width"])
        size = (max(1, round(w / ratio)), max(1, round(h / ratio)))
    if op == "resize_to_fit" and size == image.size:
        return image
    return image.resize(size, FILTERS[step["interpolation"]])


def center_pad_crop(image: Image.Image, step: dict, before_resize: Image.Image) -> Image.Image:
    (w, h), width, height = image.size, step["width"], step["height"]
    if w < width or h < height:
        fill = step["fill"]
        colour = border_median(np.asarray(before_resize)) if fill == "border_median" else tuple(fill)
        padded = Image.new("RGB", (max(w, width), max(h, height)), colour)
        padded.paste(image, ((width - w) // 2 if width > w else 0, (height - h) // 2 if height > h else 0))
        image = padded
    left, top = round((image.width - width) / 2), round((image.height - height) / 2)
    return image if image.size == (width, height) else image.crop((left, top, left + width, top + height))


def preprocess(path: str, steps: list[dict]) -> np.ndarray:
    """One image -> a (3, height, width) float32 array, step by step as preprocess.json says."""
    image = before_resize = None
    for step in steps:
        op = step["op"]
        if op == "decode":
            image = decode(path, step)
        elif op == "to_rgb":
            image = to_rgb(image, step)
        elif op == "frame_object":
            image = frame_object(image, step)
        elif op.startswith("resize"):
            before_resize, image = image, resize(image, step)
        elif op == "center_pad_crop":
            image = center_pad_crop(image, step, before_resize)
        elif op == "normalize":
            pixels = np.asarray(image, dtype=np.float32) / 255.0
            mean, std = np.asarray(step["mean"], dtype=np.float32), np.asarray(step["std"], dtype=np.float32)
            return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))
        else:
            raise ValueError(f"preprocess.json has a step this client does not know: {op!r}")
    raise ValueError("preprocess.json's steps do not end with 'normalize'")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    folder, images = Path(argv[0]), argv[1:]
    spec = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
    session = ort.InferenceSession(str(folder / spec["model_file"]), providers=["CPUExecutionProvider"])
    outputs = [o["name"] for o in spec["outputs"]]
    ranked_by = next((n for n in ("calibrated_scores", "class_scores", "logits") if n in outputs), "attributes")
    failed = 0
    for path in images:
        try:
            x = preprocess(path, spec["preprocess"]["steps"])[None]
        except (OSError, ValueError) as e:
            print(f"{path}: cannot read the image ({e})", file=sys.stderr)
            failed += 1
            continue
        values = session.run([ranked_by], {spec["input"]["name"]: x})[0][0]
        names = spec.get("class_names" if ranked_by != "attributes" else "attribute_names")
        names = names or [f"{'class' if ranked_by != 'attributes' else 'attribute'} {i}" for i in range(len(values))]
        order = np.argsort(-values, kind="stable")
        scores = {names[i]: float(values[i]) for i in order}
        print(json.dumps({"image": path, "class": names[order[0]], "scores": scores, "ranked_by": ranked_by}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
