"""Class files and matrices from outside: files read only when they are regular and of
bounded size (a FIFO or a device fails at once, never blocks), CSVs of many classes read in linear
time, and matrices refused rather than cast when they are complex or beyond float32's range."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from zeromamba.classes import as_class_matrix, load_class_attributes, read_attribute_table, read_names
from zeromamba.errors import AttributeMatrixError
from zeromamba.fileio import MAX_TEXT_FILE_BYTES


def _within(seconds: float, fn: Callable[[], Any], fifo: Path | None = None) -> BaseException | None:
    """Run ``fn`` in a thread; the exception it raised (``None`` if none). A call still running after
    ``seconds`` fails the test (a FIFO is then opened for writing, to release the blocked reader)."""
    caught: list[BaseException | None] = [None]

    def target() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            caught[0] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"the call was still running after {seconds} s: it blocked")
    return caught[0]


READERS: dict[str, Callable[[Path], Any]] = {
    "read_attribute_table": read_attribute_table,
    "load_class_attributes (csv)": lambda p: load_class_attributes(p),
    "load_class_attributes (npy)": lambda p: load_class_attributes(p),
    "read_names": lambda p: read_names(p, "class names"),
}


def _special(kind: str, tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"{kind}{suffix}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind in ("zero", "urandom"):
        path.symlink_to(f"/dev/{kind}")
    else:  # a sparse file one byte over the limit: its size is checked before anything is read
        with open(path, "wb") as f:
            f.truncate(MAX_TEXT_FILE_BYTES + 1)
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and /dev/zero")
@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("fifo", r"is a FIFO \(named pipe\), not a regular file"),
        ("zero", "is a device, not a regular file"),
        ("urandom", "is a device, not a regular file"),
        ("oversized", "1,073,741,825 bytes, more than the 1,073,741,824 bytes zeromamba reads"),
    ],
)
def test_only_regular_files_of_bounded_size_are_read(tmp_path: Path, reader: str, kind: str, message: str) -> None:
    path = _special(kind, tmp_path, ".npy" if "npy" in reader else (".txt" if reader == "read_names" else ".csv"))
    error = _within(10, lambda: READERS[reader](path), fifo=path if kind == "fifo" else None)
    assert isinstance(error, AttributeMatrixError), repr(error)
    assert str(path) in str(error) and __import__("re").search(message, str(error)), str(error)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AttributeMatrixError, match=f"class-attribute file not found: {tmp_path / 'no.csv'}"):
        read_attribute_table(tmp_path / "no.csv")
    with pytest.raises(AttributeMatrixError, match=f"class names file not found: {tmp_path / 'no.txt'}"):
        read_names(tmp_path / "no.txt", "class names")
    with pytest.raises(AttributeMatrixError, match="class-attribute file .*no.npy: not found"):
        load_class_attributes(tmp_path / "no.npy")


def test_many_classes_are_read_whole_and_checked(tmp_path: Path) -> None:
    n, a = 50_000, 12
    cells = [[f"{v:.4f}" for v in row] for row in np.random.default_rng(0).random((n, a)) + 0.01]
    values = np.array([[float(c) for c in row] for row in cells])
    path = tmp_path / "many.csv"
    lines = ["class," + ",".join(f"a{j}" for j in range(a))] + [
        f"class {i}," + ",".join(row) for i, row in enumerate(cells)
    ]
    path.write_text("\n".join(lines) + "\n")
    # generous: the quadratic reader took minutes here; the timing itself is benchmarks/csv_read.py's
    error = _within(120, lambda: read_attribute_table(path))
    assert error is None, repr(error)
    table = read_attribute_table(path)
    assert table.class_names[:2] == ["class 0", "class 1"] and table.class_names[-1] == f"class {n - 1}"
    assert np.array_equal(table.values, values) and table.attribute_names == [f"a{j}" for j in range(a)]
    # a duplicate among them is found, and a bad cell is named by its row
    path.write_text("\n".join(lines + [lines[7]]) + "\n")
    with pytest.raises(AttributeMatrixError, match=r"duplicate class rows: class 6$"):
        read_attribute_table(path)
    broken = list(lines)
    broken[30_000] = broken[30_000].replace(",", ",oops,", 1).rsplit(",", 1)[0]
    path.write_text("\n".join(broken) + "\n")
    with pytest.raises(AttributeMatrixError, match=r"many.csv, row 30001: a value that is not a number: 'oops'"):
        read_attribute_table(path)
    broken[30_000] += ",1"
    path.write_text("\n".join(broken) + "\n")
    with pytest.raises(AttributeMatrixError, match=r"row 30001: 13 values, expected 12"):
        read_attribute_table(path)


def test_quoted_names_and_other_separators(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('class,red,round\n"apple, red",1,1\n"lime",0,1\n')
    table = read_attribute_table(path)
    assert table.class_names == ["apple, red", "lime"] and table.values.tolist() == [[1, 1], [0, 1]]
    path.write_text("class;red;round\napple; 1 ;1\nlime;0; 1\n")
    table = read_attribute_table(path)
    assert table.class_names == ["apple", "lime"] and table.values.tolist() == [[1, 1], [0, 1]]
    path.write_text("class,red,round\napple,1,inf\n")
    with pytest.raises(
        AttributeMatrixError, match=r"quoted.csv, row 2: attribute values contain NaN or inf \(column 3\)"
    ):
        read_attribute_table(path)
    path.write_text("class,red,round\napple,1,2 # a comment is not a number\n")
    with pytest.raises(AttributeMatrixError, match="row 2: a value that is not a number: '2 # a comment"):
        read_attribute_table(path)


COMPLEX = "holds complex numbers .*attribute values must be real"


@pytest.mark.parametrize(
    "matrix",
    [
        np.array([[1 + 2j, 0], [0, 1]]),
        torch.tensor([[1 + 2j, 0], [0, 1]]),
        np.array([[1 + 0j, 0], [0, 1]]),  # a zero imaginary part too: the dtype says complex
    ],
    ids=["numpy", "torch", "zero-imaginary"],
)
def test_complex_matrices_are_refused_not_cast(matrix: Any) -> None:
    with pytest.raises(AttributeMatrixError, match=COMPLEX):
        load_class_attributes(matrix, 2)
    with pytest.raises(AttributeMatrixError, match=COMPLEX):
        as_class_matrix(matrix)
    with pytest.raises(AttributeMatrixError, match=COMPLEX):
        load_class_attributes({"a": matrix[0], "b": matrix[1]}, 2)


def test_values_beyond_float32_are_refused(tmp_path: Path) -> None:
    big = "beyond float32's range of \\+-3.4e\\+38 \\(first at row 1, column 0: 1e\\+300\\).*rescale"
    with pytest.raises(AttributeMatrixError, match=big):
        load_class_attributes(np.array([[1.0, 2.0], [1e300, 1.0]]), 2)
    with pytest.raises(AttributeMatrixError, match=big):
        as_class_matrix(np.array([[1.0, 2.0], [1e300, 1.0]]))
    path = tmp_path / "huge.csv"
    path.write_text("class,a,b\nx,1,2\ny,1e300,1\n")
    with pytest.raises(AttributeMatrixError, match=f"matrix of {path} holds 1 value"):
        load_class_attributes(path, 2, attribute_names=["a", "b"])
    # the largest float32 values are fine, and score like any other row of that direction
    m, _ = load_class_attributes(np.array([[3e38, 3e38], [0.0, 1.0]]), 2)
    assert torch.allclose(m[0], torch.tensor([0.7071, 0.7071]), atol=1e-4)
    # unnormalised rows so small that float32 holds them as zeros are refused, not kept as zero rows
    with pytest.raises(AttributeMatrixError, match="row 1 of the class-attribute matrix is all zeros in float32"):
        load_class_attributes(np.array([[1.0, 0.0], [1e-60, 1e-60]]), 2, normalize=False)
    small, _ = load_class_attributes(np.array([[1.0, 0.0], [1e-60, 1e-60]]), 2)
    assert torch.allclose(small[1], torch.tensor([0.7071, 0.7071]), atol=1e-4)
