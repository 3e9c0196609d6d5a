"""``terminal_safe`` and the printed forms that use it: result tables, the zoo table, the demo's
report, error messages. Control characters show as escapes; exact text stays in JSON and in
``error.args``."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from zeromamba.errors import AttributeMatrixError, ImageError, ReadOnlyTargetError, UnknownModelError
from zeromamba.results import AttributePrediction, ClassificationResult, ImageFailure, format_table
from zeromamba.terminal import terminal_safe
from zeromamba.zoo import VariantList, list_pretrained

RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
HOSTILE = "a\x1b[2J\x00b\nc\rd\te\x7f\x9b\u202ef\u2028g\udcff\x07"


def test_terminal_safe_escapes_what_acts_on_a_terminal_and_keeps_the_rest() -> None:
    assert terminal_safe(HOSTILE) == r"a\x1b[2J\0b\nc\rd\te\x7f\x9b\u202ef\u2028g\udcff\x07"
    kept = terminal_safe(HOSTILE, keep_newlines=True)
    assert kept == r"a\x1b[2J\0b" + "\n" + r"c\rd\te\x7f\x9b\u202ef\u2028g\udcff\x07"
    plain = "Black-footed Albatross, C:\\birds\\été 日本 🐦 \u200d"  # backslashes, accents, emoji, ZWJ: as they are
    assert terminal_safe(plain) is plain
    assert terminal_safe(3.5) == "3.5"
    terminal_safe(HOSTILE).encode("utf-8")  # a lone surrogate no longer makes print() fail


def test_errors_show_escapes_and_keep_the_exact_text_in_args() -> None:
    for error in (ImageError(HOSTILE), AttributeMatrixError(HOSTILE), UnknownModelError(HOSTILE)):
        assert str(error) == terminal_safe(HOSTILE, keep_newlines=True)
        assert error.args[0] == HOSTILE
    assert str(ReadOnlyTargetError("x\x1b")) == r"x\x1b"
    assert str(ImageError("line 1\n  line 2")) == "line 1\n  line 2"  # a message's own layout stays


def _result(names: list[str], source: str) -> ClassificationResult:
    return ClassificationResult(
        indices=list(range(len(names))),
        names=names,
        scores=[3.0 - i for i in range(len(names))],
        probabilities=[0.5 - 0.1 * i for i in range(len(names))],
        seen=[i % 2 == 0 for i in range(len(names))],
        num_classes=len(names),
        source=source,
    )


def test_result_tables_have_one_aligned_row_per_class() -> None:
    names = ["cat", f"dog{HOSTILE}", "fox\n   3  owl  2  9.0000  0.9000  seen"]
    result = _result(names, f"img{HOSTILE}.png")
    lines = str(result).split("\n")
    assert RAW.search(str(result)) is None
    assert len(lines) == 3 + len(names)
    assert lines[0].startswith(r"img" + terminal_safe(HOSTILE))
    end = lines[1].index("index") + len("index")  # the columns line up: each row's index ends there
    assert [line[end - 1 : end + 1] for line in lines[3:]] == ["0 ", "1 ", "2 "], lines
    assert json.loads(result.to_json())["names"] == names  # exact in JSON
    assert result.to_record()["predictions"][1]["class"] == names[1]

    attrs = AttributePrediction(values=[0.5, 0.2], attribute_names=[f"wing{HOSTILE}", "bill"], source="x\n")
    assert RAW.search(str(attrs)) is None and len(str(attrs).split("\n")) == 5
    failure = ImageFailure(source=f"bad{HOSTILE}.png", reason="it\nbroke")
    assert RAW.search(str(failure)) is None and failure.to_record()["image"] == f"bad{HOSTILE}.png"
    assert format_table(["a\x1b"], [["b\n"]], "<") == [r"a\x1b", "-----", r"b\n"]  # widths of what is shown


def test_the_zoo_table_escapes_a_registered_variants_names() -> None:
    base = list_pretrained()[0]
    variant = dataclasses.replace(base, name=f"mine{HOSTILE}", dataset=f"data\n{HOSTILE}")
    table = VariantList([base, variant]).table()
    assert RAW.search(table) is None
    assert r"mine" + terminal_safe(HOSTILE) in table


def test_the_demo_report_escapes_names(capsys: pytest.CaptureFixture[str]) -> None:
    from zeromamba.cli.demo import _print_report

    bad = f"red{HOSTILE}"
    image = {"true": bad, "predicted": bad, "probability": 0.5, "correct": True}
    _print_report(
        {
            "model": bad,
            "num_classes": 3,
            "num_seen": 2,
            "gamma": 0.1,
            "images": [image, dict(image, correct=False)],
            "explained": {"true": bad, "method": "occlusion", "attributes": [bad, "solid"]},
            "explanation": f"/tmp/{bad}.png",
            "defined": {
                "attributes": [bad, "bar"],
                "seen_in_training": False,
                "candidates": 3,
                "predicted": bad,
                "probability": 0.7,
                "recognised": True,
                "top3": [bad, bad, "x"],
            },
            "seconds": 1.0,
        }
    )
    out = capsys.readouterr().out
    assert RAW.search(out) is None
    table = out.split("never shown in training):\n", 1)[1].split("\n\n", 1)[0].split("\n")
    assert len(table) == 2 + 2 + 1  # the column names, the rule, two rows, the count
