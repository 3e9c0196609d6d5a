"""``zeromamba classify`` / ``zeromamba explain`` as a user runs them: the installed command in a
subprocess, on folders, globs and URLs, with every output format, an unreadable image among good
ones, the default model, a progress bar on a terminal, and errors as one line."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zeromamba import Predictor

from .conftest import cli_env, zeromamba_command

ATTR_NAMES = [f"attr_{i}" for i in range(6)]
CLASS_NAMES = ["cat", "dog", "fox", "owl"]

pytestmark = pytest.mark.slow  # every test starts the command several times (torch's import each)


@pytest.fixture(scope="module")
def saved(tiny_predictor, tmp_path_factory) -> tuple[Predictor, Path, Path]:
    """A tiny model folder, and a folder of images: nested, several extensions, a non-image file,
    a hidden folder (skipped) and one unreadable image."""
    predictor = tiny_predictor(CLASS_NAMES, ATTR_NAMES, input_size=64)
    root = tmp_path_factory.mktemp("cli")
    folder = Path(predictor.save_pretrained(root / "model"))
    images = root / "photos"
    (images / "trip" / "day2").mkdir(parents=True)
    (images / ".thumbs").mkdir()
    rng = np.random.default_rng(5)
    for i, name in enumerate(["a.jpg", "trip/b.PNG", "trip/day2/c.jpeg", "trip/d.png", ".thumbs/e.png"]):
        Image.fromarray(rng.integers(0, 255, size=(50, 60 + 10 * i, 3), dtype=np.uint8)).save(images / name)
    (images / "notes.txt").write_text("not an image, not looked at")
    (images / "trip" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return predictor, folder, images


def good_images(images: Path) -> list[str]:
    return [str(images / n) for n in ("a.jpg", "trip/b.PNG", "trip/d.png", "trip/day2/c.jpeg")]


def test_a_folder_in_every_format_with_an_unreadable_image(saved, cli, tmp_path: Path) -> None:
    predictor, model, images = saved
    expected = {r.source: r for r in predictor.classify(good_images(images), top_k=3)}
    broken = str(images / "trip" / "broken.png")

    # jsonl on stdout: one record per image, in path order, streamed; decoded in a worker process
    out = cli(
        "classify", images, "--model", model, "--format", "jsonl", "--top-k", "3", "--workers", "1", "--batch-size", 2
    )
    assert out.returncode == 3, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["image"] for r in records] == sorted([*good_images(images), broken])
    for r in records:
        if r["image"] == broken:
            assert "truncated or corrupt" in r["error"]
            continue
        want = expected[r["image"]]
        assert [p["class"] for p in r["predictions"]] == want.names and r["ranked_by"] == "calibrated"
        assert [p["score"] for p in r["predictions"]] == pytest.approx(want.scores, abs=1e-4)
    assert f"skipped {broken}: " in out.stderr and "1 of 5 images could not be read" in out.stderr
    assert "Traceback" not in out.stderr

    # a glob, csv, to a file: one row per image
    target = tmp_path / "out" / "results.csv"
    out = cli("classify", f"{images}/trip/*.png", "--model", model, "--format", "csv", "--output", target, "-q")
    assert out.returncode == 3 and out.stdout == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["image"] for r in rows] == [broken, str(images / "trip" / "d.png")]
    assert rows[0]["error"] and rows[1]["class_1"] == expected[rows[1]["image"]].names[0] and not rows[1]["error"]
    assert [k for k in rows[0] if k.endswith("_1")] == [
        "class_1", "index_1", "score_1", "probability_1", "calibrated_1", "seen_1",
    ]  # fmt: skip

    # json (and the old --json): a list of records; everything readable: exit 0
    out = cli("classify", *good_images(images)[:2], "--model", model, "--json", "--top-k", "2")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [d["image"] for d in data] == good_images(images)[:2] and len(data[0]["predictions"]) == 2


def test_every_image_unreadable_exits_3_as_the_docs_say(saved, cli, tmp_path: Path) -> None:
    _, model, images = saved
    missing, broken = tmp_path / "nope.png", images / "trip" / "broken.png"
    for fmt in ("table", "jsonl"):
        out = cli("classify", missing, broken, "--model", model, "--format", fmt)
        assert out.returncode == 3, out.stderr
        assert f"skipped {missing}: image file not found" in out.stderr and f"skipped {broken}: " in out.stderr
        assert "none of the 2 images could be read" in out.stderr and "Traceback" not in out.stderr
    assert [json.loads(line)["image"] for line in out.stdout.splitlines()] == [str(missing), str(broken)]
    page = (Path(__file__).resolve().parents[2] / "docs" / "command-line.md").read_text()
    assert "exit code is **3**" in page and "whether or not" in page


def _circle(path: Path, colour: str) -> Path:
    """A circle of radius 0.2 of the canvas's longer side on white (the shipped model's range)."""
    from PIL import ImageDraw

    image = Image.new("RGB", (600, 400), "white")
    ImageDraw.Draw(image).ellipse([180, 80, 420, 320], fill=colour)
    image.save(path)
    return path


def test_the_command_line_marks_low_confidence(cli, tmp_path: Path) -> None:
    grey, clear = _circle(tmp_path / "grey.png", "grey"), _circle(tmp_path / "clear.png", "blue")
    out = cli("classify", grey, clear, "--model", "shapes-zsl", "--top-k", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("[LOW CONFIDENCE]") == 1 and "low confidence: near chance" in out.stdout
    assert "1 of 2 answers are low confidence" in out.stderr
    out = cli("classify", grey, clear, "--model", "shapes-zsl", "--format", "csv", "--top-k", "1", "-q")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["low_confidence"] for r in rows] == ["True", "False"]
    assert rows[0]["confidence_note"].startswith("near chance") and rows[1]["confidence_note"] == ""
    out = cli("classify", grey, "--model", "shapes-zsl", "--format", "jsonl", "-q")
    assert json.loads(out.stdout)["low_confidence"] is True and out.stderr == ""


def test_the_table_labels_what_ranks_and_classes_from_a_csv(saved, cli, tmp_path: Path) -> None:
    _, model, images = saved
    csv_path = tmp_path / "animals.csv"
    # columns in another order and spelling than the model's attributes: matched by name
    csv_path.write_text("class,Attr 5,attr_0,ATTR-1,attr_2,attr_3,attr_4\nzebra,1,1,0,0,1,0\nhorse,0,0,1,1,0,1\n")
    out = cli("classify", images / "a.jpg", "--model", model, "--attributes", csv_path, "--gamma", "0", "-q")
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.splitlines()
    assert "ranked by score, uncalibrated" in lines[0]
    assert lines[1].split() == ["rank", "class", "index", "score", "prob"]
    assert {lines[3].split()[1], lines[4].split()[1]} == {"zebra", "horse"}
    out = cli("classify", images / "a.jpg", "--model", model, "--top-k", "2")
    assert "ranked by calibrated = prob - 0.3 x seen" in out.stdout
    assert out.stdout.splitlines()[1].split()[3:6] == ["calibrated", "prob", "score"]


def _split_imports(stderr: str) -> tuple[list[str], set[str]]:
    """``PYTHONPROFILEIMPORTTIME=1`` stderr -> (the other lines, the names of the imported modules)."""
    lines = stderr.splitlines()
    imported = {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}
    return [line for line in lines if not line.startswith("import time:")], imported


def test_errors_are_one_line_and_debug_shows_the_traceback(saved, cli, tmp_path: Path) -> None:
    _, model, images = saved
    typo = tmp_path / "typo.csv"
    typo.write_text("class,attr_0,attr_1,attr_2,attr_3,attr_4,atr_5\nzebra,1,0,0,1,0,1\n")
    image = images / "a.jpg"
    cases = {  # expected message: (arguments, whether it is found before torch is imported)
        "folder not found: no_such_folder/": (("classify", "no_such_folder/", "--model", model), True),
        "no file matches": (("classify", tmp_path / "*.webp", "--model", model), True),
        "model folder not found: './no_such_model/'": (("classify", image, "--model", "./no_such_model/"), True),
        "zeromamba convert CUB_bestGZSL.pth --variant cub-gzsl": (("classify", image, "--model", "cub-gzsl"), True),
        "Did you mean 'shapes-zsl'": (("explain", image, "--out", tmp_path / "x.png", "--model", "shapes-zls"), True),
        "is not available": (("classify", image, "--model", model, "--device", "cuda:7"), False),
        "unknown column(s) 'atr_5' (did you mean 'attr_5'?)": (
            ("classify", image, "--model", model, "--attributes", typo), False,
        ),
    }  # fmt: skip
    for expected, (args, early) in cases.items():
        out = cli(*args, PYTHONPROFILEIMPORTTIME="1")
        lines, imported = _split_imports(out.stderr)
        assert out.returncode == 1, (args, lines)
        assert lines[-1].startswith("zeromamba: error:") and expected in lines[-1], (args, lines)
        assert "Traceback" not in out.stderr
        assert ("torch" in imported) != early, (args, "torch imported" if early else "torch not imported")
    out = cli("--debug", "classify", "no_such_folder/", "--model", model)
    assert out.returncode == 1 and "Traceback" in out.stderr and "folder not found" in out.stderr
    assert cli("classify", image, "--top-k", "0").returncode == 2  # usage errors: argparse's


def _fake_cache_entry(hub: Path, repo_id: str, files: dict[str, bytes]) -> None:
    """A repository in huggingface_hub's cache layout (refs/main -> snapshots/<commit>/...)."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)


def test_the_default_model_is_one_available_here(saved, cli, hf_home: Path, tmp_path: Path) -> None:
    from zeromamba.data.shapes import render_shape

    _, model, _ = saved
    circle = tmp_path / "circle.png"
    render_shape("red", "solid", "circle", np.random.default_rng(1)).save(circle)
    out = cli("classify", circle, "--top-k", "1")  # nothing cached: the shipped model
    assert out.returncode == 0, out.stderr
    assert "using the model 'shapes-zsl'" in out.stderr and "red solid circle" in out.stdout

    # one zoo model in the cache: that one (here the tiny model's files stand in for cub-gzsl's)
    files = {p.name: p.read_bytes() for p in model.iterdir()}
    _fake_cache_entry(hf_home / "hub", "zeromamba/zeromamba-small-cub-gzsl", files)
    listing = cli("list")
    row = next(line for line in listing.stdout.splitlines() if line.startswith("cub-gzsl "))
    assert row.split()[-1] == "cached" and "shipped" in listing.stdout
    out = cli("classify", circle, "--top-k", "1", "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    assert "using the model 'cub-gzsl' (in the Hugging Face cache" in out.stderr
    assert json.loads(out.stdout)["predictions"][0]["class"] in CLASS_NAMES

    # two: it asks which, listing them
    _fake_cache_entry(hf_home / "hub", "zeromamba/zeromamba-small-sun-gzsl", files)
    out = cli("classify", circle)
    assert out.returncode == 1
    assert "several models are available on this machine: cub-gzsl (cached), sun-gzsl (cached), shapes-zsl" in (
        out.stderr
    )
    assert "--model NAME" in out.stderr


def test_a_progress_bar_on_a_terminal_only(saved, hf_home: Path) -> None:
    _, model, images = saved
    args = [zeromamba_command(), "classify", images, "--model", model, "--batch-size", "1", "--format", "jsonl"]

    def run(*extra: str) -> tuple[str, str]:
        leader, follower = pty.openpty()  # stderr is a terminal (80 x 24), stdout a pipe
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        proc = subprocess.Popen(
            [*map(str, args), *extra], stdout=subprocess.PIPE, stderr=follower, env=cli_env(hf_home), text=True
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the terminal closed: the command ended
                break
            if not data:
                break
            chunks.append(data.decode(errors="replace"))
        stdout = proc.communicate(timeout=180)[0]
        os.close(leader)
        return stdout, "".join(chunks)

    stdout, terminal = run()
    assert "classify: 100%" in terminal and "5/5" in terminal and "img" in terminal
    assert len(stdout.splitlines()) == 5  # the records are untouched by the bar
    _, quiet = run("--quiet")
    assert "100%" not in quiet and "skipped" in quiet  # --quiet hides the bar, never a skipped image


class _Images(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path != "/photo.jpg":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def image_server(saved) -> Iterator[str]:
    _, _, images = saved
    _Images.body = (images / "a.jpg").read_bytes()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_urls_and_explain(saved, cli, image_server: str, tmp_path: Path) -> None:
    predictor, model, images = saved
    url = f"{image_server}/photo.jpg"
    out = cli("classify", url, f"{image_server}/gone.jpg", "--model", model, "--format", "jsonl", "--top-k", "2")
    assert out.returncode == 3, out.stderr
    fetched, gone = (json.loads(line) for line in out.stdout.splitlines())
    local = predictor.classify(str(images / "a.jpg"), top_k=2)
    assert fetched["image"] == url and [p["class"] for p in fetched["predictions"]] == local.names
    assert "HTTP 404" in gone["error"] and f"skipped {image_server}/gone.jpg" in out.stderr

    png = tmp_path / "figs" / "why.png"
    out = cli("explain", url, "--out", png, "--model", model, "--target", "attr_2", "1", "--json")
    assert out.returncode == 0, out.stderr
    assert [a["index"] for a in json.loads(out.stdout)["attributes"]] == [2, 1]
    with Image.open(png) as figure:
        assert figure.format == "PNG" and figure.size[0] > 2 * 200


def test_explain_method_flag(saved, cli, tmp_path: Path) -> None:
    """``zeromamba explain --method``: each method's maps are the Python API's; the default is occlusion."""
    predictor, model, images = saved
    image = str(images / "a.jpg")
    for method in ("gradient", "attention", None):
        png = tmp_path / f"{method}.png"
        flag = ["--method", method] if method else []
        out = cli("explain", image, "--out", png, "--model", model, "--top-k", "2", "--json", *flag)
        assert out.returncode == 0, out.stderr
        record = json.loads(out.stdout)
        expected = predictor.explain(image, top_k=2, method=method)
        assert record["method"] == expected.method == (method or "occlusion")
        maps = np.asarray([a["attention"] for a in record["attributes"]])
        assert maps.shape == expected.attention.shape  # feature grid, or the input's pixels for occlusion
        assert np.allclose(maps, expected.attention, atol=1e-4)
    out = cli("explain", image, "--out", tmp_path / "x.png", "--model", model, "--method", "saliency")
    assert out.returncode == 2 and "invalid choice: 'saliency'" in out.stderr
