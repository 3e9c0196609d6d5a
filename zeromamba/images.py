"""Image loading and preprocessing for the predictor.

Every raw input (a path, a PIL image, a numpy array, a ``uint8`` tensor) becomes an RGB
:class:`PIL.Image.Image` with its EXIF orientation applied, then the model's preprocessing
(resize, optional centre crop, ImageNet normalisation) turns it into a ``(3, H, W)`` float tensor.

Input conventions:

* ``str`` / :class:`os.PathLike`: an image file, opened with PIL; an ``http://`` or ``https://``
  URL is fetched (:func:`zeromamba.sources.fetch_url`: one deadline, a size limit, no other schemes).
* ``bytes``: an encoded image file's contents (JPEG, PNG, ... as read from disk or a column of a
  table), decoded as a file would be.
* :class:`PIL.Image.Image`: any mode. Alpha (``RGBA``, ``LA``, ``PA``, palette transparency) is
  composited on white; ``CMYK``, ``YCbCr``, ``HSV``, ``P``, ``1`` and ``L`` are converted to RGB;
  16-bit modes (``I;16*``) and ``I`` are read as 16-bit data (0..65535) and scaled to 8 bits;
  ``F`` is read as 0..1 when its maximum is at most 1, else as 0..255.
* :class:`numpy.ndarray`: raw pixels, ``H x W`` (grey) or ``H x W x C`` with C in 1, 3, 4 (4 =
  RGBA, composited on white). ``uint8`` is 0..255, ``uint16`` 0..65535, ``bool`` 0/1, and float
  arrays must lie in [0, 1].
* :class:`torch.Tensor`: ``uint8`` tensors are raw pixels, ``C x H x W`` or ``B x C x H x W`` (as
  ``torchvision.io.read_image`` returns them) and are preprocessed like any image. **Floating
  point tensors are taken as already preprocessed model input** (resized and normalised with the
  predictor's mean/std, ``3 x H x W`` or ``B x 3 x H x W``) and go to the model unchanged.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .framing import frame_object
from .letterbox import fill_colour, letterbox
from .preprocess_config import INTERPOLATIONS, resolve_preprocess
from .sources import fetch_url, is_url

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageInput",
    "ImageTransform",
    "PreparedImage",
    "decode_image_bytes",
    "describe_source",
    "load_image",
    "prepare_image",
    "preprocess_image",
    "to_rgb",
]

#: Images with more pixels than this are refused (:class:`~zeromamba.errors.ImageError`).
DEFAULT_MAX_PIXELS = 100_000_000

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray | torch.Tensor

_WHITE = (255, 255, 255)


def describe_source(source: Any, index: int) -> str:
    """A short human-readable name for an input (its path, or ``image <index>``)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    filename = getattr(source, "filename", "")  # PIL images opened from files
    return str(filename) if filename else f"image {index}"


# --- loading -------------------------------------------------------------------------------------


def load_image(source: str | os.PathLike | Image.Image, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file or URL (or take a PIL image) as RGB with its EXIF orientation applied.

    Args:
        source: a path, an ``http(s)://`` URL (see :func:`~zeromamba.sources.fetch_url`) or a :class:`PIL.Image.Image`.
        max_pixels: refuse images with more pixels than this (``None``: no limit of ours; PIL's own
            decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``, still applies to files).

    Raises:
        ImageError: missing or unreadable file, zero bytes, not an image, truncated data, an image
            over the pixel limit, or a URL that cannot be fetched.
    """
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels, "the image")
        try:
            return to_rgb(_exif_transpose(source))
        except ImageError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken lazily-loaded image
            raise ImageError(f"cannot read the PIL image ({type(e).__name__}: {e})") from e
    if is_url(source):
        data = fetch_url(str(source))
        if not data:
            raise ImageError(f"{source} returned no data (0 bytes)")
        return _decode(lambda: io.BytesIO(data), str(source), max_pixels)
    path = Path(os.fspath(source))
    if not path.exists():
        raise ImageError(f"image file not found: {path}; check the path")
    if path.is_dir():
        raise ImageError(f"{path} is a directory, not an image file; pass the image files inside it")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageError(f"cannot read image file {path}: {e}") from e
    if size == 0:
        raise ImageError(f"image file {path} is empty (0 bytes); re-download or re-export it")
    return _decode(lambda: path, str(path), max_pixels)


def decode_image_bytes(
    data: bytes, name: str = "the image bytes", *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode an encoded image file's contents (``name`` says which in errors), as :func:`load_image` a file.

    Raises:
        ImageError: no data, not an image, truncated data, or an image over the pixel limit.
    """
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); re-download or re-export the image")
    return _decode(lambda: io.BytesIO(data), name, max_pixels)


def _decode(opener: Callable[[], Any], name: str, max_pixels: int | None) -> Image.Image:
    """Open, check the size of, and fully decode an image; every failure an :class:`ImageError`."""
    try:
        with Image.open(opener()) as img:
            _check_pixels(img.size, max_pixels, name)
            img.load()  # decode now, inside the try, so truncation surfaces here
            return to_rgb(_exif_transpose(img))
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(
            f"{name} is over PIL's pixel limit for safe decoding ({e}); downscale it, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        ) from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{name} is not an image PIL can read; convert it to JPEG or PNG") from e
    except PermissionError as e:
        raise ImageError(f"no permission to read image file {name}; check its permissions") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # PIL reports truncated or corrupt data as OSError ("image file is truncated"), SyntaxError
        # (broken PNG chunks) or ValueError/EOFError depending on the plugin.
        raise ImageError(
            f"{name} is truncated or corrupt ({type(e).__name__}: {e}); re-download or re-export the image"
        ) from e


def _check_pixels(size: tuple[int, int], max_pixels: int | None, what: str) -> None:
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise ImageError(
            f"{what} has {size[0]} x {size[1]} = {size[0] * size[1]:,} pixels, over the pixel limit of {max_pixels:,}; "
            "downscale it first, or raise the limit (predictor.max_pixels)"
        )


def _exif_transpose(img: Image.Image) -> Image.Image:
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - malformed EXIF: keep the stored orientation rather than fail
        return img
    return img if out is None else out


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on white, 16-bit data scaled down)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _composite_on_white(img)
    if mode == "P":
        if "transparency" in img.info:
            return _composite_on_white(img)
        return img.convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.float64)
        grey = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        grey = np.clip(np.round(arr * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageError(f"cannot convert a PIL image of mode {mode!r} to RGB; convert it to RGB yourself") from e


def _array_to_pil(arr: np.ndarray, what: str) -> Image.Image:
    """Raw pixels ``H x W`` or ``H x W x C`` (C = 1, 3, 4) to an RGB PIL image."""
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        raise ImageError(
            f"{what} has shape {arr.shape}, which looks channels-first; numpy images are H x W x C "
            "(use arr.transpose(1, 2, 0))"
        )
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ImageError(f"{what} has shape {arr.shape}; expected H x W or H x W x C with C in 1, 3 or 4")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{what} is empty (shape {arr.shape})")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError(f"{what} contains NaN or inf values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ImageError(
                f"{what} is a float array with values in [{lo:.3g}, {hi:.3g}]; float images must lie in [0, 1] "
                "(divide 0..255 data by 255, or pass it as uint8)"
            )
        arr = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageError(f"{what} has dtype {arr.dtype}; use uint8 (0..255), uint16 or float (0..1)")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    mode = {2: "L"}.get(arr.ndim) or {3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return to_rgb(Image.fromarray(np.ascontiguousarray(arr), mode=mode) if mode != "L" else Image.fromarray(arr))


# --- preprocessing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedImage:
    """One image ready for the model.

    Attributes:
        tensor: ``(3, H, W)`` float32 model input (normalised).
        image: the RGB image it came from at its original size (after EXIF rotation), or ``None``
            for a preprocessed tensor input (see :meth:`display_image`).
        size: ``(width, height)`` of the original image (of the tensor for tensor inputs).
        box: ``(left, top, right, bottom)`` region of the original image the model sees (the whole
            image for ``squash``; the centre crop, mapped back, for ``center``; for ``letterbox``
            the whole frame, which reaches past the image on the padded sides).
        source: a short name for the input (path or ``image <i>``).
    """

    tensor: torch.Tensor
    image: Image.Image | None
    size: tuple[int, int]
    box: tuple[float, float, float, float]
    source: str

    def display_image(self, mean: Sequence[float], std: Sequence[float]) -> Image.Image:
        """The original RGB image, or the de-normalised tensor for preprocessed inputs."""
        if self.image is not None:
            return self.image
        m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        arr = (self.tensor.float() * s + m).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")


def preprocess_image(img: Image.Image, preprocess: Mapping[str, Any]) -> tuple[torch.Tensor, tuple[float, ...]]:
    """An RGB image -> ``((3, H, W) float32 tensor, box in original coordinates)``.

    ``preprocess`` must be complete (see :func:`~zeromamba.preprocess_config.resolve_preprocess`).
    """
    if preprocess.get("object_extent") is not None:
        framed_object, (dx, dy) = frame_object(img, *preprocess["object_extent"])
        if framed_object is not img:  # the box below is in the frame's pixels: move it back onto the image
            tensor, (left, top, right, bottom) = preprocess_image(framed_object, {**preprocess, "object_extent": None})
            return tensor, (left + dx, top + dy, right + dx, bottom + dy)
    _, out_h, out_w = preprocess["input_size"]
    resample = INTERPOLATIONS[preprocess["interpolation"]]
    mode, crop_pct = preprocess["crop_mode"], preprocess["crop_pct"]
    if mode in ("border", "letterbox"):
        fill = fill_colour(preprocess["mean"]) if mode == "border" else None
        framed, box = letterbox(img, out_w, out_h, resample, fill=fill, crop_pct=crop_pct)
        return _normalise(framed, preprocess), box
    w, h = img.size
    box_w, box_h = math.floor(out_w / crop_pct), math.floor(out_h / crop_pct)
    if mode == "squash":
        # the whole image scaled to size / crop_pct (aspect ignored), then the centre crop
        scale_w, scale_h = box_w, box_h
    elif out_h == out_w:
        # torchvision's Resize(int), as timm's "center": the shorter side to size / crop_pct
        if w <= h:
            scale_w, scale_h = box_w, max(box_w, int(box_w * h / w))
        else:
            scale_w, scale_h = max(box_h, int(box_h * w / h)), box_h
    else:
        # timm's ResizeKeepRatio (shorter side) for a non-square "center"
        ratio = min(h / box_h, w / box_w)
        scale_w, scale_h = max(1, round(w / ratio)), max(1, round(h / ratio))
    resized = img.resize((scale_w, scale_h), resample=resample)
    sx, sy = w / scale_w, h / scale_h
    left = int(round((scale_w - out_w) / 2.0))
    top = int(round((scale_h - out_h) / 2.0))
    if (scale_w, scale_h) != (out_w, out_h):
        resized = resized.crop((left, top, left + out_w, top + out_h))
    box = (left * sx, top * sy, (left + out_w) * sx, (top + out_h) * sy)
    return _normalise(resized, preprocess), box


def _normalise(img: Image.Image, preprocess: Mapping[str, Any]) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.float32) / 255.0
    mean = np.asarray(preprocess["mean"], dtype=np.float32)
    std = np.asarray(preprocess["std"], dtype=np.float32)
    arr = (arr - mean) / std
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def prepare_image(
    source: Any,
    preprocess: Mapping[str, Any],
    *,
    index: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    keep_image: bool = False,
) -> list[PreparedImage]:
    """Turn one input (see the module docs) into prepared images (several for a 4-D tensor).

    Args:
        keep_image: keep the RGB original on the result (needed by ``explain``; costs memory).

    Raises:
        ImageError: an input that cannot be read or has an unsupported type, shape or range.
    """
    what = describe_source(source, index)
    if isinstance(source, torch.Tensor):
        return _prepare_tensor(source, preprocess, what, max_pixels, keep_image)
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            _check_pixels((source.shape[1], source.shape[0]), max_pixels, what)
        img = _array_to_pil(source, what)
    elif isinstance(source, (str, os.PathLike, Image.Image)):
        img = load_image(source, max_pixels=max_pixels)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        img = decode_image_bytes(bytes(source), what, max_pixels=max_pixels)
    else:
        raise ImageError(
            f"{what}: cannot classify an object of type {type(source).__name__}; pass a path, a URL, encoded "
            "bytes, a PIL image, a numpy array, a torch tensor, or a list of these"
        )
    tensor, box = preprocess_image(img, preprocess)
    return [PreparedImage(tensor, img if keep_image else None, img.size, box, what)]


class ImageTransform:
    """A predictor's preprocessing as a callable, ``image -> (3, H, W) float32 tensor``: exactly
    what :meth:`~zeromamba.predictor.Predictor.classify` does to each image (EXIF rotation, RGB,
    resize / crop, normalisation). Use it in your own ``Dataset`` / ``DataLoader``; it pickles,
    so it works in worker processes. Any single input of :func:`prepare_image` is accepted
    (a path, URL, PIL image, array, 3-D tensor; float tensors pass through as preprocessed).

    Raises:
        ImageError: the input cannot be read, or holds more than one image.
    """

    def __init__(self, preprocess: Mapping[str, Any] | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.preprocess = resolve_preprocess(preprocess)
        self.max_pixels = max_pixels

    def __call__(self, image: ImageInput) -> torch.Tensor:
        prepared = prepare_image(image, self.preprocess, max_pixels=self.max_pixels)
        if len(prepared) != 1:
            raise ImageError(f"the transform takes one image, got a batch of {len(prepared)}")
        return prepared[0].tensor

    def __repr__(self) -> str:
        p = self.preprocess
        return (
            f"ImageTransform(size={p['input_size'][1:]}, crop_mode={p['crop_mode']!r}, crop_pct={p['crop_pct']}, "
            f"interpolation={p['interpolation']!r}, mean={p['mean']}, std={p['std']})"
        )


def _prepare_tensor(
    t: torch.Tensor, preprocess: Mapping[str, Any], what: str, max_pixels: int | None, keep_image: bool
) -> list[PreparedImage]:
    t = t.detach()
    if t.ndim not in (3, 4):
        raise ImageError(f"{what} is a tensor of shape {tuple(t.shape)}; expected C x H x W or B x C x H x W")
    batch = t.unsqueeze(0) if t.ndim == 3 else t
    if batch.shape[1] not in (1, 3, 4) or batch.shape[2] == 0 or batch.shape[3] == 0:
        raise ImageError(f"{what} is a tensor of shape {tuple(t.shape)}; expected 3 channels first (C x H x W)")
    _check_pixels((batch.shape[3], batch.shape[2]), max_pixels, what)
    out = []
    if t.dtype == torch.uint8:
        # raw pixels, like torchvision.io.read_image: preprocess as any image
        for i, chw in enumerate(batch):
            name = what if t.ndim == 3 else f"{what}[{i}]"
            img = _array_to_pil(chw.cpu().permute(1, 2, 0).numpy(), name)
            tensor, box = preprocess_image(img, preprocess)
            out.append(PreparedImage(tensor, img if keep_image else None, img.size, box, name))
        return out
    if not t.is_floating_point():
        raise ImageError(f"{what} is a {t.dtype} tensor; pass uint8 raw pixels or a float preprocessed tensor")
    if batch.shape[1] != 3:
        raise ImageError(
            f"{what} is a float tensor with {batch.shape[1]} channels; preprocessed input must have 3 (RGB)"
        )
    if not torch.isfinite(batch).all():
        raise ImageError(f"{what} contains NaN or inf values")
    batch = batch.to("cpu", torch.float32)
    h, w = batch.shape[2], batch.shape[3]
    for i, chw in enumerate(batch):
        name = what if t.ndim == 3 else f"{what}[{i}]"
        out.append(PreparedImage(chw.contiguous(), None, (w, h), (0.0, 0.0, float(w), float(h)), name))
    return out
