"""``benchmarks/shapes_styles.py``: the shipped demo model on drawing styles its training never used,
with styles a candidate's training covers kept apart from the pooled figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..helpers import REPO, benchmark_report

SCRIPT = REPO / "benchmarks" / "shapes_styles.py"
ARGS = ["--per-class", "1", "--styles", "fine_marks,shaded", "--threads", "1"]
BASE = [sys.executable, str(SCRIPT), *ARGS]


def test_styles_within_a_training_are_kept_apart_from_the_pooled_rest(tmp_path: Path) -> None:
    args = [*ARGS, "--within-training", "fine_marks=training draws 1.8-7 stripes across"]
    report = benchmark_report("shapes_styles.py", args, tmp_path / "styles.json", cwd=REPO)
    assert report["styles"] == ["fine_marks", "shaded"]
    assert report["styles_within_training_ranges"] == {"fine_marks": "training draws 1.8-7 stripes across"}
    model = report["models"]["shapes-zsl"]
    assert model["styles_outside_training_ranges"] == ["shaded"]
    # one image of each of the 36 classes per style: both styles pooled, and the one outside alone
    assert model["fresh_styles_pooled"]["images"] == 72
    outside, shaded = model["outside_training_ranges_pooled"], model["per_style"]["shaded"]
    assert outside["images"] == 36 and outside["top1_all"] == shaded["top1_all"]
    assert set(outside["answer_group_accuracy"]) == {"colour", "fill", "shape"}


def test_a_within_style_must_be_one_of_the_styles_and_say_why(tmp_path: Path) -> None:
    for bad in ("placement=not drawn here", "fine_marks", "fine_marks= "):
        run = subprocess.run([*BASE, "--within-training", bad], capture_output=True, text=True, timeout=600, cwd=REPO)
        assert run.returncode == 2 and "--within-training takes STYLE=WHY" in run.stderr, bad
