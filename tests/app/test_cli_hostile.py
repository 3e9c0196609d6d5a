"""Hostile model folders and checkpoints through the installed ``zeromamba`` command: exit code 1,
one line on stderr that names the cause, no traceback, no code from a pickle run."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import zeromamba

SHIPPED = Path(zeromamba.__file__).parent / "pretrained" / "shapes-zsl"


class _System:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):  # noqa: ANN204
        return os.system, (self.command,)


def _assert_one_line_error(result, pattern: str) -> None:  # noqa: ANN001
    import re

    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("zeromamba: error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "img.png"
    Image.new("RGB", (80, 80), "white").save(path)
    return path


@pytest.mark.slow
def test_classify_with_broken_folders(cli, tmp_path: Path, image: Path) -> None:  # noqa: ANN001
    nan = Path(shutil.copytree(SHIPPED, tmp_path / "nan"))
    state = load_file(str(nan / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 4)
    state[name].view(-1)[0] = float("nan")
    save_file(state, str(nan / "model.safetensors"))
    _assert_one_line_error(cli("classify", image, "--model", nan, timeout=120), rf"NaN or inf .*{name}")

    huge = Path(shutil.copytree(SHIPPED, tmp_path / "huge"))
    cfg = json.loads((huge / "config.json").read_text())
    cfg["model_args"]["embed_dim"] = 10**9
    (huge / "config.json").write_text(json.dumps(cfg))
    _assert_one_line_error(cli("classify", image, "--model", huge, timeout=120), r"embed_dim .* \[1, 8192\]")

    fifo = Path(shutil.copytree(SHIPPED, tmp_path / "fifo"))
    (fifo / "config.json").unlink()
    os.mkfifo(fifo / "config.json")
    _assert_one_line_error(cli("classify", image, "--model", fifo, timeout=120), r"FIFO")

    ints = Path(shutil.copytree(SHIPPED, tmp_path / "ints"))
    save_file({k: v.to(torch.int32) for k, v in state.items()}, str(ints / "model.safetensors"))
    _assert_one_line_error(cli("classify", image, "--model", ints, timeout=120), r"wrong dtype")


@pytest.mark.slow
def test_convert_refuses_a_code_running_pickle(cli, tmp_path: Path) -> None:  # noqa: ANN001
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model": {"w": _System(f"touch {marker}")}}, protocol=2))
    result = cli("convert", evil, "--out", tmp_path / "out", timeout=120)
    _assert_one_line_error(result, r"asks the unpickler to import os\.system")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
