"""``zeromamba classify --dtype int8`` as a user runs it: the installed command in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import zeromamba
from zeromamba.data.shapes import shapes_classes
from zeromamba.errors import Int8UnavailableError
from zeromamba.ops.int8_linear import int8_kernel

from ..drawings import draw_test_set


def test_classify_in_int8(cli, tmp_path: Path) -> None:
    try:
        int8_kernel()
    except Int8UnavailableError as e:
        pytest.skip(f"int8 is not available here: {e}")
    paths = []
    for i, drawing in enumerate(draw_test_set(shapes_classes(), per_class=1, seed=5)[::4]):
        paths.append(tmp_path / f"{i}.png")
        drawing.image.save(paths[-1])
    out = cli("classify", *paths, "--model", "shapes-zsl", "--dtype", "int8", "--format", "jsonl", "-q")
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    # the same answers as the int8 predictor in this process, and (nearly) those of float32
    int8 = zeromamba.from_pretrained("shapes-zsl", dtype="int8").classify(paths, top_k=5)
    float32 = zeromamba.from_pretrained("shapes-zsl").classify(paths, top_k=1)
    assert [[p["class"] for p in r["predictions"]] for r in got] == [r.names for r in int8]
    scores = [p["score"] for r in got for p in r["predictions"]]
    assert scores == pytest.approx([s for r in int8 for s in r.scores], rel=1e-4, abs=1e-4)
    assert sum(r.names[0] == f.names[0] for r, f in zip(int8, float32)) >= len(paths) - 1
    bad = cli("classify", paths[0], "--model", "shapes-zsl", "--dtype", "int4")
    assert bad.returncode == 1 and "unknown dtype 'int4'" in bad.stderr and "int8 (CPU)" in bad.stderr
