"""Hostile and broken model folders, checkpoints and files.

Each case is built on the fly from the shipped shapes-zsl folder (or from scratch) and must end
in one ZeroMambaError subclass whose message names the cause, within a generous time bound and
without a large allocation (the peak resident memory of this process is reset before each case
and read after it), and without any code in a pickle running (marker files).
"""

from __future__ import annotations

import builtins
import functools
import io
import json
import os
import pickle
import re
import shutil
import signal
import struct
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import zeromamba
from zeromamba.errors import CheckpointError, ConfigError, ImageError, NonFiniteOutputError, ZeroMambaError

SHIPPED = Path(zeromamba.__file__).parent / "pretrained" / "shapes-zsl"
TIME_LIMIT_S = 20
MEMORY_LIMIT_BYTES = 2 << 30


def _peak_rss() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextmanager
def bounded(seconds: float = TIME_LIMIT_S) -> Iterator[None]:
    """Fail if the block takes longer than ``seconds`` (SIGALRM interrupts a blocking read or a
    Python loop) or raises the peak resident memory by more than MEMORY_LIMIT_BYTES."""

    def timeout(signum, frame):  # noqa: ANN001
        raise AssertionError(f"took more than {seconds} s")

    measurable = False
    try:  # reset the peak RSS to the current RSS (Linux)
        Path("/proc/self/clear_refs").write_text("5")
        measurable = True
    except OSError:
        pass
    before = _peak_rss()
    old = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    after = _peak_rss()
    if measurable and before is not None and after is not None:
        assert after - before < MEMORY_LIMIT_BYTES, f"peak memory grew by {(after - before) / 2**30:.1f} GiB"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped model folder, to break."""
    return Path(shutil.copytree(SHIPPED, tmp_path / "model"))


def _edit_config(folder: Path, change: Callable[[dict], object]) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    change(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


def _edit_weights(folder: Path, change: Callable[[dict[str, torch.Tensor]], object]) -> None:
    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"))


def _first_float(state: dict[str, torch.Tensor]) -> str:
    return next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 4)


def _poison(value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def change(state: dict[str, torch.Tensor]) -> None:
        state[_first_float(state)].view(-1)[3] = value

    return change


def _all_as(dtype: torch.dtype) -> Callable[[dict[str, torch.Tensor]], None]:
    def change(state: dict[str, torch.Tensor]) -> None:
        for k in list(state):
            state[k] = state[k].to(dtype)

    return change


def _set_args(**args: object) -> Callable[[dict], None]:
    return lambda cfg: cfg["model_args"].update(args)


def _raw_config(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "config.json").write_text(text)


def _replace_with_fifo(name: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder / name).unlink()
        os.mkfifo(folder / name)

    return make


def _replace_with_link(name: str, target: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).symlink_to(target)

    return make


def _sparse(name: str, size: int) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        with open(folder / name, "r+b") as f:
            f.truncate(size)  # a hole: instant, no disk used

    return make


def _huge_header(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 62) + data[8:])


# (case id, how to break the folder, exception, message pattern)
FOLDER_CASES: list[tuple[str, Callable[[Path], None], type[ZeroMambaError], str]] = [
    ("weights-nan", lambda f: _edit_weights(f, _poison(float("nan"))), CheckpointError, r"NaN or inf .*values\)"),
    ("weights-inf", lambda f: _edit_weights(f, _poison(float("inf"))), CheckpointError, r"NaN or inf"),
    ("weights-int", lambda f: _edit_weights(f, _all_as(torch.int64)), CheckpointError, r"wrong dtype .* is I64"),
    ("weights-bool", lambda f: _edit_weights(f, _all_as(torch.bool)), CheckpointError, r"wrong dtype .* is BOOL"),
    ("embed-dim-1e9", lambda f: _edit_config(f, _set_args(embed_dim=10**9)), ConfigError, r"embed_dim .*\[1, 8192\]"),
    (
        "embed-dim-negative",
        lambda f: _edit_config(f, _set_args(embed_dim=-8)),
        ConfigError,
        r"embed_dim = -8 is outside",
    ),
    ("depth-negative", lambda f: _edit_config(f, _set_args(depths=[1, -2])), ConfigError, r"depths\[1\] = -2"),
    ("depth-1e6", lambda f: _edit_config(f, _set_args(depths=[10**6])), ConfigError, r"depths\[0\] = 1000000"),
    (
        "model-too-big",
        lambda f: _edit_config(f, _set_args(embed_dim=8192, depths=[64, 64])),
        ConfigError,
        r"parameters",
    ),
    ("arg-string", lambda f: _edit_config(f, _set_args(embed_dim="32")), ConfigError, r"embed_dim must be an integer"),
    ("arg-bool-as-int", lambda f: _edit_config(f, _set_args(embed_dim=True)), ConfigError, r"embed_dim must be an"),
    (
        "arg-float-nan",
        lambda f: _edit_config(f, _set_args(ssm_ratio=float("nan"))),
        ConfigError,
        r"cannot read|ssm_ratio",
    ),
    ("arg-unknown", lambda f: _edit_config(f, _set_args(evil=1)), ConfigError, r"model_args.evil is not an argument"),
    (
        "int-5000-digits",
        _raw_config('{"zeromamba_format": ' + "9" * 5000 + "}"),
        ConfigError,
        r"cannot read .* as JSON",
    ),
    ("json-nested", _raw_config("[" * 100_000 + "]" * 100_000), ConfigError, r"nested too deeply|cannot read"),
    ("config-fifo", _replace_with_fifo("config.json"), ConfigError, r"FIFO"),
    ("weights-fifo", _replace_with_fifo("model.safetensors"), CheckpointError, r"not a regular file"),
    ("config-dev-zero", _replace_with_link("config.json", "/dev/zero"), ConfigError, r"is a device"),
    ("config-dev-urandom", _replace_with_link("config.json", "/dev/urandom"), ConfigError, r"is a device"),
    ("weights-dev-zero", _replace_with_link("model.safetensors", "/dev/zero"), CheckpointError, r"not a regular file"),
    ("weights-dev-urandom", _replace_with_link("model.safetensors", "/dev/urandom"), CheckpointError, r"regular"),
    ("config-oversized", _sparse("config.json", 100 << 20), ConfigError, r"more than the .* bytes"),
    ("weights-huge-header", _huge_header, CheckpointError, r"header claims"),
    ("weights-empty", lambda f: (f / "model.safetensors").write_bytes(b""), CheckpointError, r"shorter than"),
    (
        "format-version-word",
        lambda f: _edit_config(f, lambda c: c.update(zeromamba_format="one")),
        ConfigError,
        r"MAJOR",
    ),
    (
        "format-version-bool",
        lambda f: _edit_config(f, lambda c: c.update(zeromamba_format=True)),
        ConfigError,
        r"MAJOR",
    ),
    (
        "gamma-string",
        lambda f: _edit_config(f, lambda c: c.update(gamma="0.1")),
        ConfigError,
        r"gamma must be a finite",
    ),
    ("gamma-huge", lambda f: _edit_config(f, lambda c: c.update(gamma=1e300)), ConfigError, r"gamma must be a finite"),
    ("task-unknown", lambda f: _edit_config(f, lambda c: c.update(task="pwn")), ConfigError, r"task is 'pwn'"),
    ("names-not-strings", lambda f: _edit_config(f, lambda c: c.update(class_names=[1] * 36)), ConfigError, r"strings"),
    ("seen-bools", lambda f: _edit_config(f, lambda c: c.update(seen_classes=[True])), ConfigError, r"seen_classes"),
    (
        "input-size-huge",
        lambda f: _edit_config(f, lambda c: c["pretrained_cfg"].update(input_size=[3, 10**6, 10**6])),
        ConfigError,
        r"input_size must be",
    ),
    (
        "class-file-absolute",
        lambda f: _edit_config(f, lambda c: c["class_attributes"].update(file=str(f / "class_attributes.safetensors"))),
        ConfigError,
        r"outside the model folder",
    ),
    (
        "class-file-parent",
        lambda f: _edit_config(f, lambda c: c["class_attributes"].update(file="../model/class_attributes.safetensors")),
        ConfigError,
        r"outside the model folder",
    ),
    (
        "class-matrix-nan",
        lambda f: (
            save_file({"class_attributes": torch.full((36, 10), float("nan"))}, str(f / "class_attributes.safetensors"))
            or _edit_config(f, lambda c: c["class_attributes"].pop("sha256"))
        ),
        CheckpointError,
        r"NaN or inf",
    ),
    (
        "class-matrix-1e300",
        lambda f: (
            save_file(
                {"class_attributes": torch.full((36, 10), 1e300, dtype=torch.float64)},
                str(f / "class_attributes.safetensors"),
            )
            or _edit_config(f, lambda c: c["class_attributes"].pop("sha256"))
        ),
        CheckpointError,
        r"as float32 \(360 of 360",
    ),
]


@pytest.mark.parametrize("case, breaker, error, message", FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES])
def test_broken_model_folder(folder: Path, case: str, breaker, error: type, message: str) -> None:  # noqa: ANN001
    breaker(folder)
    with bounded(), pytest.raises(error, match=message):
        zeromamba.from_pretrained(folder)
    with bounded(), pytest.raises(error, match=message):
        zeromamba.load_model(folder)


def test_an_unbroken_copy_still_loads(folder: Path) -> None:
    """The corpus breaks a folder that loads: its errors come from the breakage alone."""
    assert zeromamba.from_pretrained(folder).classify(torch.zeros(3, 80, 80)).names


# --- pickles that ask to run code ---------------------------------------------------------------


class _Call:
    """Pickles as ``func(*args)``: what an attacker's checkpoint asks the unpickler to do."""

    def __init__(self, func, *args):  # noqa: ANN001, ANN002
        self.func, self.args = func, args

    def __reduce__(self):  # noqa: ANN204
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, tuple[object, str]]:
    return {
        "os.system": (_Call(os.system, f"touch {marker}"), "os.system"),
        "builtins.exec": (_Call(builtins.exec, f"open({str(marker)!r}, 'w')"), "builtins.exec"),
        "subprocess.Popen": (_Call(subprocess.Popen, ["touch", str(marker)]), "subprocess.Popen"),
        "functools.partial": (_Call(functools.partial, os.system, f"touch {marker}"), "functools.partial"),
        "builtins.eval": (_Call(builtins.eval, f"open({str(marker)!r}, 'w')"), "builtins.eval"),
    }


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize(
    "payload", ["os.system", "builtins.exec", "subprocess.Popen", "functools.partial", "builtins.eval"]
)
def test_code_running_pickles_are_refused_by_name(tmp_path: Path, payload: str, protocol: int) -> None:
    marker = tmp_path / "MARKER"
    obj, name = _payloads(marker)[payload]
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"model": {"w": obj}}, protocol=protocol))
    with bounded(), pytest.raises(CheckpointError, match="asks the unpickler to import .*" + re.escape(name)):
        zeromamba.load_official(path)
    assert not marker.exists()


def test_code_in_a_torch_zip_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2), "x": _Call(os.system, f"touch {marker}")}}, path)
    with bounded(), pytest.raises(CheckpointError, match=r"import os\.system.*Nothing in it was run"):
        zeromamba.load_official(path)
    assert not marker.exists()


def test_zip_decompression_bomb_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb/data.pkl", b"\x80\x02" + b"N" * (300 << 20) + b".")  # 300 MB of pickle in ~300 KB
    assert path.stat().st_size < 2 << 20
    with bounded(), pytest.raises(CheckpointError, match=r"decompression bomb"):
        zeromamba.load_official(path)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "dev-urandom", "folder"])
def test_checkpoint_that_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.pth"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero" if kind == "dev-zero" else "/dev/urandom")
    with bounded(), pytest.raises(CheckpointError, match=r"not a regular file"):
        zeromamba.load_official(path)


def test_plain_state_dict_with_nan_is_refused_by_name(tmp_path: Path) -> None:
    """The authors' format goes through the same value checks as ours."""
    from zeromamba.models import VMamba

    state = VMamba(num_classes=4, embed_dim=8, depths=(1, 1)).state_dict()
    official = {k.replace("classifier.", "classifier."): v.clone() for k, v in state.items()}
    name = next(k for k, v in official.items() if v.is_floating_point() and v.numel() > 2)
    official[name].view(-1)[1] = float("nan")
    buf = io.BytesIO()
    torch.save({"model": official}, buf)
    (tmp_path / "nan.pth").write_bytes(buf.getvalue())
    with bounded(), pytest.raises(CheckpointError, match=rf"NaN or inf .*{name.split('.')[0]}"):
        zeromamba.load_official(tmp_path / "nan.pth", num_classes=4)


# --- the predictor never returns non-finite scores ----------------------------------------------


def test_predictor_refuses_to_rank_non_finite_outputs() -> None:
    predictor = zeromamba.from_pretrained("shapes-zsl")
    image = torch.zeros(3, 80, 80)
    assert predictor.classify(image).names  # a finite input ranks
    head = predictor.model.global_head.weight
    original = head.detach().clone()
    with torch.no_grad():  # weights that overflow in the forward pass (finite, so a loader takes them)
        head.fill_(3e38)
    try:
        with pytest.raises(NonFiniteOutputError, match=r"NaN or inf attribute values for 1 of 1 input"):
            predictor.classify(image)
        with pytest.raises(NonFiniteOutputError, match=r"weights hold NaN/inf or extreme values"):
            predictor.predict_attributes(image)
        results = predictor.classify_iter([image, image], skip_errors=True)
        with pytest.raises(NonFiniteOutputError):
            list(results)
    finally:
        with torch.no_grad():
            head.copy_(original)


def test_predictor_refuses_a_nan_input_tensor() -> None:
    """A non-finite input is the input's fault, and said so before the model runs."""
    predictor = zeromamba.from_pretrained("shapes-zsl")
    x = torch.zeros(3, 80, 80)
    x[0, 0, 0] = float("nan")
    with pytest.raises(ImageError, match=r"NaN or inf"):
        predictor.classify(x)


def test_timm_pretrained_loading_gets_the_same_value_checks(folder: Path) -> None:
    """Weights that timm reads itself (``pretrained=True`` with a file) pass our filter's checks too."""
    import timm

    _edit_weights(folder, _poison(float("inf")))
    overlay = {"file": str(folder / "model.safetensors")}
    with bounded(), pytest.raises(CheckpointError, match=r"NaN or inf"):
        timm.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True, pretrained_cfg_overlay=overlay)
    _edit_weights(folder, _all_as(torch.int32))
    with bounded(), pytest.raises(CheckpointError, match=r"wrong kind of dtype"):
        timm.create_model("zeromamba_nano_s8.shapes_zsl", pretrained=True, pretrained_cfg_overlay=overlay)


def test_legacy_format_checkpoints_still_load(tmp_path: Path) -> None:
    """The scan stops at the legacy format's five pickles: random tensor bytes after them are not
    read as imports (which would refuse an honest file)."""
    from zeromamba.official import read_official_state_dict

    state = {f"w{i}": torch.randn(257, 129, generator=torch.Generator().manual_seed(i)) for i in range(8)}
    torch.save({"model": state}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    loaded = read_official_state_dict(tmp_path / "old.pth")
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
