"""Image loading and preprocessing: every input kind, PIL mode, EXIF orientation and bad file."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from zeromamba.errors import ConfigError, ImageError, ZeroMambaError
from zeromamba.images import load_image, prepare_image, preprocess_image, to_rgb
from zeromamba.preprocess_config import DEFAULT_PREPROCESS, resolve_preprocess

PRE = resolve_preprocess({"input_size": (3, 32, 32)})


def _asymmetric(w: int = 40, h: int = 24) -> Image.Image:
    """An RGB image that looks different under every rotation/flip."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    arr[: h // 3, : w // 4, 2] = 255
    return Image.fromarray(arr)


# --- PIL modes --------------------------------------------------------------------------------------


def test_resolve_preprocess_defaults_are_the_authors():
    cfg = resolve_preprocess(None)
    assert cfg == {**DEFAULT_PREPROCESS, "input_size": (3, 448, 448)}
    assert cfg["crop_mode"] == "squash" and cfg["crop_pct"] == 1.0
    assert resolve_preprocess({"input_size": [3, 64, 96], "mean": [0, 0, 0], "url": "x"})["input_size"] == (3, 64, 96)
    assert resolve_preprocess({"input_size": 64})["input_size"] == (3, 64, 64)


@pytest.mark.parametrize(
    "bad",
    [
        {"input_size": (1, 32, 32)},
        {"mean": (0.5, 0.5)},
        {"std": (0.0, 1.0, 1.0)},
        {"interpolation": "cubic-ish"},
        {"crop_pct": 1.5},
        {"crop_mode": "reflect"},
    ],
)
def test_resolve_preprocess_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        resolve_preprocess(bad)


def test_grey_and_binary_modes():
    grey = Image.new("L", (4, 3), 77)
    assert to_rgb(grey).mode == "RGB" and to_rgb(grey).getpixel((0, 0)) == (77, 77, 77)
    one = Image.new("1", (4, 3), 1)
    assert to_rgb(one).getpixel((1, 1)) == (255, 255, 255)


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black -> white
    rgba.putpixel((1, 0), (0, 0, 0, 128))  # half transparent black -> mid grey
    out = to_rgb(rgba)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert all(abs(c - 127) <= 1 for c in out.getpixel((1, 0)))
    assert out.getpixel((2, 2)) == (255, 0, 0)
    la = Image.new("LA", (2, 2), (0, 0))
    assert to_rgb(la).getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_and_without_transparency():
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
    assert to_rgb(p).getpixel((0, 0)) == (10, 200, 30)
    p.info["transparency"] = 1
    assert to_rgb(p).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk():
    cmyk = Image.new("CMYK", (3, 3), (0, 255, 255, 0))  # pure red
    assert to_rgb(cmyk).getpixel((0, 0)) == (255, 0, 0)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 32896, 65535]], dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    assert [to_rgb(img).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    # through a 16-bit PNG file as well
    path = tmp_path / "deep.png"
    img.save(path)
    assert [load_image(path).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    as_int = Image.fromarray(arr.astype(np.int32))
    assert as_int.mode == "I"
    assert to_rgb(as_int).getpixel((2, 0)) == (255, 255, 255)


def test_float_mode():
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert [to_rgb(f).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "CMYK", "P", "1", "I;16", "I", "F", "YCbCr", "RGB"])
def test_every_mode_reaches_the_model_as_rgb(tmp_path, mode):
    base = _asymmetric()
    img = (
        base.convert(mode) if mode not in ("I;16",) else Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)
    )
    out = prepare_image(img, PRE)
    assert len(out) == 1 and out[0].tensor.shape == (3, 32, 32) and out[0].tensor.dtype == torch.float32
    assert out[0].size == base.size


# --- EXIF orientation ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    base = _asymmetric()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / f"rotated{suffix}"
    base.save(path, exif=exif, **({"quality": 100, "subsampling": 0} if suffix == ".jpg" else {}))
    loaded = load_image(path)
    assert loaded.size == (base.height, base.width)
    stored = Image.open(path).convert("RGB")  # the pixels as stored, without orientation
    # (from an array: a PIL copy would carry the EXIF tag along and be rotated again)
    expected = Image.fromarray(np.asarray(stored.transpose(Image.Transpose.ROTATE_270)))
    assert np.array_equal(np.asarray(loaded), np.asarray(expected))
    # what the model sees is the rotated image (the same tensor as the manually rotated input)
    seen = prepare_image(path, PRE)[0].tensor
    assert torch.equal(seen, prepare_image(expected, PRE)[0].tensor)
    # an opened PIL image with the EXIF tag is rotated too
    assert torch.equal(prepare_image(Image.open(path), PRE)[0].tensor, seen)


# --- numpy and tensors -------------------------------------------------------------------------------


def test_numpy_inputs_agree_with_pil():
    base = _asymmetric()
    arr = np.asarray(base)
    ref = prepare_image(base, PRE)[0].tensor
    assert torch.equal(prepare_image(arr, PRE)[0].tensor, ref)
    assert torch.equal(prepare_image(arr.astype(np.float32) / 255.0, PRE)[0].tensor, ref)
    assert torch.equal(prepare_image(arr.astype(np.uint16) * 257, PRE)[0].tensor, ref)
    rgba = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert torch.equal(prepare_image(rgba, PRE)[0].tensor, ref)
    grey = arr[..., 0]
    g1 = prepare_image(grey, PRE)[0].tensor
    assert torch.equal(prepare_image(grey[..., None], PRE)[0].tensor, g1)
    assert torch.equal(g1, prepare_image(Image.fromarray(grey), PRE)[0].tensor)
    assert prepare_image(np.ones((5, 6), bool), PRE)[0].size == (6, 5)


def test_tensor_inputs():
    base = _asymmetric()
    ref = prepare_image(base, PRE)[0]
    chw = torch.from_numpy(np.array(base)).permute(2, 0, 1).contiguous()
    assert torch.equal(prepare_image(chw, PRE)[0].tensor, ref.tensor)
    batch = prepare_image(torch.stack([chw, chw]), PRE)
    assert len(batch) == 2 and all(torch.equal(b.tensor, ref.tensor) for b in batch)
    # float tensors are model input already: passed through unchanged
    pre = prepare_image(ref.tensor, PRE)[0]
    assert torch.equal(pre.tensor, ref.tensor) and pre.size == (32, 32)
    assert len(prepare_image(torch.stack([ref.tensor] * 3), PRE)) == 3
    # and can be shown again (de-normalised) for explanations
    shown = np.asarray(pre.display_image(PRE["mean"], PRE["std"]), dtype=np.int32)
    assert np.abs(shown - np.asarray(base.resize((32, 32), Image.Resampling.BILINEAR), np.int32)).max() <= 1


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 20, 30), np.uint8), "channels-first"),
        (np.zeros((20, 30, 2), np.uint8), "H x W"),
        (np.zeros((20,), np.uint8), "H x W"),
        (np.full((4, 4), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((4, 4), np.nan, np.float32), "NaN"),
        (np.zeros((4, 4), np.int64), "dtype"),
        (np.zeros((0, 4), np.uint8), "empty"),
        (torch.zeros(2, 20, 20), "channels"),
        (torch.full((3, 8, 8), float("inf")), "NaN or inf"),
        (torch.zeros(8, 8), "C x H x W"),
        (torch.zeros(3, 8, 8, dtype=torch.int32), "uint8"),
        (12345, "cannot classify"),
    ],
)
def test_bad_arrays(bad, match):
    with pytest.raises(ImageError, match=match):
        prepare_image(bad, PRE)


# --- centre crop ---------------------------------------------------------------------------------------


def test_center_crop_box_maps_back_to_the_original():
    cfg = resolve_preprocess({"input_size": (3, 32, 32), "crop_mode": "center", "crop_pct": 0.8})
    img = _asymmetric(80, 40)
    tensor, box = preprocess_image(img, cfg)
    assert tensor.shape == (3, 32, 32)
    left, top, right, bottom = box
    # shorter side 40 -> 40 px resized; the 32 px crop is 80% of it, centred
    assert top == pytest.approx(4.0) and bottom == pytest.approx(36.0)
    assert (left + right) / 2 == pytest.approx(40.0, abs=1.0)
    _, full = preprocess_image(img, PRE)
    assert full == (0.0, 0.0, 80.0, 40.0)


# --- bad files -----------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (no pixel data needed to trip size checks)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_bad_files(tmp_path):
    good = tmp_path / "good.jpg"
    _asymmetric(200, 150).save(good, quality=90)
    data = good.read_bytes()

    cases = {}
    cases["missing"] = (tmp_path / "nope.jpg", "not found")
    cases["dir"] = (tmp_path, "directory")
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.jpg", "empty")
    (tmp_path / "text.jpg").write_text("hello, I am not an image\n")
    cases["text"] = (tmp_path / "text.jpg", "not an image")
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    cases["truncated jpeg"] = (tmp_path / "cut.jpg", "truncated or corrupt")
    png = io.BytesIO()
    _asymmetric(200, 150).save(png, format="PNG")
    (tmp_path / "cut.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    cases["truncated png"] = (tmp_path / "cut.png", "truncated or corrupt")
    for name, (path, match) in cases.items():
        with pytest.raises(ImageError, match=match) as info:
            load_image(path)
        assert isinstance(info.value, ZeroMambaError), name


def test_pixel_limit(tmp_path):
    path = tmp_path / "big.png"
    _asymmetric(120, 100).save(path)
    with pytest.raises(ImageError, match="over the pixel limit"):
        load_image(path, max_pixels=10_000)
    assert load_image(path, max_pixels=None).size == (120, 100)
    with pytest.raises(ImageError, match="over the pixel limit"):
        prepare_image(np.zeros((120, 100), np.uint8), PRE, max_pixels=10_000)
    with pytest.raises(ImageError, match="over the pixel limit"):
        prepare_image(torch.zeros(3, 120, 100), PRE, max_pixels=10_000)
    # a header claiming 10^10 pixels: refused before any decoding
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(100_000, 100_000))
    # PIL's own DecompressionBombError (raised while reading the header) becomes an ImageError
    for limit in (None, 10**12):
        with pytest.raises(ImageError, match="pixel limit"):
            load_image(bomb, max_pixels=limit)
