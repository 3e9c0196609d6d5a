"""The resumable Parquet output (``zeromamba classify --format parquet``): parts saved as records come,
joined into one file at the end (complete or absent), a resume that skips what is done (an input
listed twice is done twice), and refusals that keep an unfinished run's work."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from zeromamba.errors import ZeroMambaError
from zeromamba.partial_output import ParquetOutput, partial_folder

from .batch_support import require
from .conftest import cli_env, zeromamba_command

SETTINGS = {"model": "shapes-zsl", "top_k": 3, "gamma": None}


@pytest.fixture(autouse=True)
def _pyarrow() -> None:
    require("pyarrow")


def record(image: str, error: str | None = None) -> dict:
    if error:
        return {"image": image, "error": error}
    prediction = {"rank": 1, "class": "cat", "index": 0, "score": 1.5, "probability": 0.7}
    return {
        "image": image, "ranked_by": "score", "gamma": None, "num_classes": 2, "low_confidence": False,
        "confidence_note": "", "predictions": [prediction],
    }  # fmt: skip


def rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    from zeromamba.record_table import table_to_records

    return table_to_records(pq.read_table(path))


def test_parts_are_joined_into_one_file_and_the_folder_goes(tmp_path: Path) -> None:
    target = tmp_path / "out" / "results.parquet"
    output = ParquetOutput(target, SETTINGS, save_every=2)
    assert output.start(["a", "b", "c"]) == ["a", "b", "c"]
    for r in (record("a"), record("b"), record("c", "c is truncated")):
        output.add(r)
    assert not target.exists() and len(list(partial_folder(target).glob("part-*.parquet"))) == 1  # a, b saved
    assert output.finish() == (3, 1)
    assert rows(target) == [record("a"), record("b"), record("c", "c is truncated")]
    assert not partial_folder(target).exists()


def test_a_resume_classifies_only_what_the_parts_lack(tmp_path: Path) -> None:
    target = tmp_path / "results.parquet"
    first = ParquetOutput(target, SETTINGS, save_every=10)
    first.start(["a", "b", "a", "c"])
    first.add(record("a"))
    first.add(record("b"))
    assert first.stop() is True  # stopped: what is held is saved
    with pytest.raises(ZeroMambaError, match="add --resume"):
        ParquetOutput(target, SETTINGS).start(["a", "b", "a", "c"])
    with pytest.raises(ZeroMambaError, match=r"top_k: 3 then, 5 now"):
        ParquetOutput(target, {**SETTINGS, "top_k": 5}, resume=True).start(["a"])
    second = ParquetOutput(target, SETTINGS, resume=True)
    assert second.start(["a", "b", "a", "c"]) == ["a", "c"]  # "a" was listed twice: once is done
    assert second.done_before == 2
    second.add(record("a"))
    second.add(record("c"))
    assert second.finish() == (4, 0)
    assert [r["image"] for r in rows(target)] == ["a", "b", "a", "c"]


def test_a_resume_with_nothing_left_only_joins(tmp_path: Path) -> None:
    """Everything was saved but not joined (killed while joining): the command only joins, no model loaded."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"")
    target = tmp_path / "results.parquet"
    settings = {"model": "shapes-zsl", "revision": None, "attributes_sha256": None, "class_names_sha256": None}
    output = ParquetOutput(target, {**settings, "top_k": 5, "gamma": None, "dtype": None})
    output.start([str(images / "a.png")])
    output.add(record(str(images / "a.png"), "a.png is empty (0 bytes)"))
    assert output.stop()
    done = subprocess.run(
        [zeromamba_command(), "classify", images, "--model", "shapes-zsl", "--format", "parquet", "--output", target,
         "--resume", "-q"],
        capture_output=True, text=True, env=cli_env(tmp_path / "hf"), timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # the one image could not be read, in the earlier run
    assert rows(target) == [record(str(images / "a.png"), "a.png is empty (0 bytes)")]
    assert not partial_folder(target).exists()


def test_a_run_that_stops_before_any_record_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "results.parquet"
    output = ParquetOutput(target, SETTINGS)
    output.start(["a"])
    assert output.stop() is False and not partial_folder(target).exists() and not target.exists()
    assert ParquetOutput(target, SETTINGS, resume=True).start(["a"]) == ["a"]  # nothing to resume: all of it


def test_a_read_only_target_is_refused_before_the_work(tmp_path: Path) -> None:
    from zeromamba.errors import ReadOnlyTargetError

    target = tmp_path / "results.parquet"
    target.write_bytes(b"kept")
    target.chmod(0o444)
    with pytest.raises(ReadOnlyTargetError, match="read-only"):
        ParquetOutput(target, SETTINGS).start(["a"])
    assert target.read_bytes() == b"kept" and not partial_folder(target).exists()


def test_a_folder_that_is_not_a_partial_output_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "results.parquet"
    partial_folder(target).mkdir()
    with pytest.raises(ZeroMambaError, match="no readable settings.json"):
        ParquetOutput(target, SETTINGS, resume=True).start(["a"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "ray", "--format", "csv", "--output", "r.csv"], "write Parquet, not csv"),
        (["--format", "parquet"], "give --output FILE.parquet"),
        (["--format", "parquet", "--output", "r.parquet", "--actors", "2"], "--actors go with --engine ray"),
        (["--engine", "ray", "--output", "r.parquet", "--actors", "0"], "--actors must be at least 1"),
    ],
)
def test_the_command_refuses_options_that_do_not_go_together(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    done = subprocess.run(
        [zeromamba_command(), "classify", "a.png", *args],
        capture_output=True, text=True, cwd=tmp_path, env=cli_env(tmp_path / "hf"), timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("r.*")) and not list(tmp_path.glob(".r.*"))
