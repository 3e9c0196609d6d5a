"""Names from outside that hold terminal control characters (ESC sequences, NUL, a newline, a
carriage return, a right-to-left override): the installed ``zeromamba`` command prints them as
escapes in its tables, notes and error lines, never raw, never as an extra table row; JSON keeps the
exact names."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

import zeromamba

SHIPPED = Path(zeromamba.__file__).parent / "pretrained" / "shapes-zsl"
# anything a terminal acts on (a newline only where the command put one: checked apart)
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
TITLE = "\x1b]0;pwned\x07"  # set the window title
FAKE_ROW = "\n   1  cat                      0      0.9999  0.9999  9.9999  unseen"


def _hostile(name: str, i: int) -> str:
    """One of several hostile variations of ``name``, by ``i``."""
    return [
        f"{CLEAR}{name}",
        f"{name}{FAKE_ROW}",
        f"{name}\x00nul",
        f"{TITLE}{name}",
        f"{name}\rover",
        f"{name} \u202edesrever",
        f"\x1b[31m{name}\x1b[0m\t\x7f",
    ][i % 7]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, list[str], list[str], Path]:  # noqa: ANN001
    """The shipped model with hostile class and attribute names, and a white image whose file name
    is hostile too (with a newline)."""
    root = tmp_path_factory.mktemp("hostile-names")
    folder = Path(shutil.copytree(SHIPPED, root / "model"))
    cfg = json.loads((folder / "config.json").read_text())
    classes = [_hostile(n, i) for i, n in enumerate(cfg["class_names"])]
    attributes = [_hostile(n, i) for i, n in enumerate(cfg["attribute_names"])]
    cfg.update(class_names=classes, attribute_names=attributes)
    (folder / "config.json").write_text(json.dumps(cfg))
    image = root / f"photo{CLEAR}\n{TITLE}.png"
    Image.new("RGB", (80, 80), "white").save(image)
    return folder, classes, attributes, image


def _assert_nothing_raw(text: str) -> None:
    found = RAW_CONTROL.search(text)
    assert found is None, f"raw {found.group()!r} at {found.start()}: {text[max(0, found.start() - 80) :][:160]!r}"


@pytest.mark.slow
def test_a_table_shows_hostile_names_escaped(cli, hostile, tmp_path: Path) -> None:  # noqa: ANN001
    folder, classes, _, image = hostile
    broken = tmp_path / f"broken{TITLE}\n.png"  # unreadable: reported on stderr
    broken.write_bytes(b"\x89PNG\r\n\x1a\n cut")
    result = cli("classify", image, broken, "--model", folder, "--top-k", len(classes), timeout=120)
    assert result.returncode == 3, result.stderr
    _assert_nothing_raw(result.stdout + result.stderr)
    lines = result.stdout.rstrip("\n").split("\n")
    if lines[-1].startswith("low confidence: "):
        lines.pop()
    # the heading, the column names, the rule, one row per class: no row more
    assert len(lines) == 3 + len(classes), result.stdout
    assert lines[0].startswith(str(image.parent) + r"/photo\x1b[2J\x1b[H\n\x1b]0;pwned\x07.png  (36 classes")
    assert [int(line.split()[0]) for line in lines[3:]] == list(range(1, len(classes) + 1))
    shown = result.stdout
    for escaped in (r"\x1b[2J\x1b[H", r"\n   1  cat", r"\0nul", r"\rover", r"\u202edesrever", r"\x1b[31m", r"\t\x7f"):
        assert escaped in shown, escaped
    skipped = [line for line in result.stderr.splitlines() if line.startswith("zeromamba: skipped ")]
    assert len(skipped) == 1 and skipped[0].startswith(r"zeromamba: skipped " + str(tmp_path) + r"/broken\x1b]0;")


@pytest.mark.slow
def test_json_keeps_the_exact_names(cli, hostile) -> None:  # noqa: ANN001
    folder, classes, _, image = hostile
    result = cli("classify", image, "--model", folder, "--top-k", len(classes), "--format", "json", timeout=120)
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["image"] == str(image)
    assert sorted(p["class"] for p in record["predictions"]) == sorted(classes)


@pytest.mark.slow
def test_csv_keeps_the_exact_names_even_of_a_file_name_that_is_not_utf8(cli, hostile, tmp_path: Path) -> None:  # noqa: ANN001
    folder, classes, _, image = hostile
    odd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/\xffphoto\x1b.png"))  # a Latin-1 name: not UTF-8
    shutil.copyfile(image, odd)
    out = tmp_path / "results.csv"
    result = cli("classify", image, odd, "--model", folder, "--format", "csv", "--output", out, timeout=120)
    assert result.returncode == 0, result.stderr  # was a UnicodeEncodeError traceback
    with open(out, encoding="utf-8", errors="surrogateescape", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == [str(image), str(odd)]  # the file's own bytes
    assert {r["class_1"] for r in rows} <= set(classes)


@pytest.mark.slow
def test_explain_shows_hostile_attribute_names_escaped(cli, hostile, tmp_path: Path) -> None:  # noqa: ANN001
    folder, classes, attributes, image = hostile
    figure = tmp_path / "e.png"
    every = [str(i) for i in range(len(attributes))]  # draw every attribute
    args = ["--model", folder, "--out", figure, "--target", *every, "--method", "gradient"]
    out = cli("explain", image, *args, timeout=120)
    assert out.returncode == 0, out.stderr
    _assert_nothing_raw(out.stdout + out.stderr)
    lines = out.stdout.rstrip("\n").split("\n")
    assert len(lines) == 2 + len(attributes), out.stdout  # the image, the class, one line per attribute
    assert lines[5].startswith(r"  \x1b]0;pwned\x07red: value "), lines[5]
    assert Image.open(figure).size[0] > 0  # the figure's labels: the same names on one line each


@pytest.mark.slow
def test_an_error_naming_hostile_tensors_is_one_escaped_line(cli, hostile, tmp_path: Path) -> None:  # noqa: ANN001
    folder, _, _, image = hostile
    broken = Path(shutil.copytree(folder, tmp_path / "extra-tensor"))
    state = load_file(str(broken / "model.safetensors"))
    state[f"head{CLEAR}{FAKE_ROW}"] = state[next(iter(state))].clone()
    save_file(state, str(broken / "model.safetensors"))
    result = cli("classify", image, "--model", broken, timeout=120)
    assert result.returncode == 1
    _assert_nothing_raw(result.stdout + result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("zeromamba: error: "), result.stderr
    assert r"unexpected (1): head\x1b[2J\x1b[H\n   1  cat" in lines[0]
