"""Records as table rows (``zeromamba classify --format parquet``, ``BatchClassifier``'s columns): a
Parquet file holds exactly the records ``--format jsonl`` writes, and gives them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zeromamba.record_table import RECORD_FIELDS, records_to_table, result_columns, table_to_records
from zeromamba.results import ClassificationResult, ImageFailure

from ..app.batch_support import require


def _results() -> list:
    calibrated = ClassificationResult(
        indices=[2, 0], names=["fox", "cat"], scores=[1.25, -0.5], probabilities=[0.6, 0.1], calibrated=[0.6, -0.2],
        seen=[False, True], gamma=0.3, num_classes=4, source="a.jpg", low_confidence=True,
        confidence_note="near chance", attribute_values=[0.5, -1.0, 2.0],
    )  # fmt: skip
    plain = ClassificationResult(
        indices=[1], names=["=HYPERLINK()"], scores=[3.0], probabilities=[0.9], num_classes=2, source="b.png",
        attribute_values=[0.25, 0.0, 1.0],
    )  # fmt: skip
    return [calibrated, ImageFailure("c.png", "c.png is truncated or corrupt"), plain]


def test_a_parquet_file_gives_back_the_jsonl_records(tmp_path: Path) -> None:
    require("pyarrow")
    import pyarrow.parquet as pq

    records = [r.to_record() for r in _results()]
    assert "calibrated" not in records[2]["predictions"][0] and records[2]["gamma"] is None
    pq.write_table(records_to_table(records, with_attribute_values=True), tmp_path / "r.parquet")
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.column_names == [*RECORD_FIELDS, "attribute_values"] and table.num_rows == 3
    assert table.column("error").null_count == 2 and table.column("predictions").null_count == 1
    back = table_to_records(table)
    assert back == json.loads(json.dumps(records))  # what --format jsonl writes, field for field


def test_a_batch_gets_the_top_class_and_the_record_fields() -> None:
    records = [r.to_record() for r in _results()]
    columns = result_columns(records)
    assert "image" not in columns and "attribute_values" not in columns
    assert columns["class"] == ["fox", None, "=HYPERLINK()"] and columns["score"] == [1.25, None, 3.0]
    assert columns["error"] == [None, "c.png is truncated or corrupt", None]
    assert columns["low_confidence"] == [True, None, False] and columns["predictions"][1] is None
    assert columns["predictions"][0] == records[0]["predictions"]
    assert result_columns(records, with_attribute_values=True)["attribute_values"][2] == [0.25, 0.0, 1.0]


@pytest.mark.parametrize("count", [0, 1])
def test_an_empty_or_one_row_table(count: int) -> None:
    require("pyarrow")
    records = [r.to_record() for r in _results()[:count]]
    assert table_to_records(records_to_table(records)) == [
        {k: v for k, v in r.items() if k != "attribute_values"} for r in records
    ]
