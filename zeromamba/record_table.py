"""Per-image records as table columns: the rows of ``zeromamba classify --format parquet``, and the
result columns :class:`~zeromamba.batch_classifier.BatchClassifier` adds to a batch.

A record is what :meth:`~zeromamba.results.ClassificationResult.to_record` (or
:meth:`~zeromamba.results.ImageFailure.to_record`) returns, the same dict that ``--format jsonl``
writes as a line. As a table it is one row with one column per field (:data:`RECORD_FIELDS`):
``predictions`` is a list of structs (:data:`PREDICTION_FIELDS`), and a field the record leaves out
is null (``error`` on a classified image; every field but ``image`` and ``error`` on an unreadable
one; ``calibrated`` and ``seen`` where nothing was calibrated or nothing is known to be seen).
:func:`table_to_records` gives the records back exactly.

pyarrow is imported only by the functions that build Arrow objects (the ``ray`` extra installs it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "PREDICTION_FIELDS",
    "RECORD_FIELDS",
    "RESULT_COLUMNS",
    "as_record",
    "record_schema",
    "records_to_table",
    "result_columns",
    "result_types",
    "table_to_records",
]

#: the fields of a record, in column order (``attribute_values`` follows when asked for)
RECORD_FIELDS: tuple[str, ...] = (
    "image",
    "error",
    "ranked_by",
    "gamma",
    "num_classes",
    "low_confidence",
    "confidence_note",
    "predictions",
)
#: the fields of one entry of ``predictions``
PREDICTION_FIELDS: tuple[str, ...] = ("rank", "class", "index", "score", "probability", "calibrated", "seen")
#: the columns a batch gets: the top class, its score and probability, then the record's fields but
#: ``image`` (the batch's own columns say which image a row is)
RESULT_COLUMNS: tuple[str, ...] = ("class", "score", "probability", *RECORD_FIELDS[1:])
_OPTIONAL_PREDICTION_FIELDS = ("calibrated", "seen")


def _prediction_type() -> pa.DataType:
    import pyarrow as pa

    return pa.struct(
        [
            ("rank", pa.int64()),
            ("class", pa.string()),
            ("index", pa.int64()),
            ("score", pa.float64()),
            ("probability", pa.float64()),
            ("calibrated", pa.float64()),
            ("seen", pa.bool_()),
        ]
    )


def _field_types() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "image": pa.string(),
        "error": pa.string(),
        "ranked_by": pa.string(),
        "gamma": pa.float64(),
        "num_classes": pa.int64(),
        "low_confidence": pa.bool_(),
        "confidence_note": pa.string(),
        "predictions": pa.list_(_prediction_type()),
        "attribute_values": pa.list_(pa.float32()),  # the model's own precision: float32 values, exact
        "class": pa.string(),
        "score": pa.float64(),
        "probability": pa.float64(),
    }


def record_schema(with_attribute_values: bool = False) -> pa.Schema:
    """The Arrow schema of a table of records (Parquet keeps it): :data:`RECORD_FIELDS`, then
    ``attribute_values`` (a list of float32) when ``with_attribute_values``."""
    import pyarrow as pa

    types = _field_types()
    names = RECORD_FIELDS + (("attribute_values",) if with_attribute_values else ())
    return pa.schema([(name, types[name]) for name in names])


def records_to_table(records: Iterable[Mapping[str, Any]], with_attribute_values: bool = False) -> pa.Table:
    """Records (``to_record()`` dicts) as an Arrow table of :func:`record_schema`, one row each."""
    import pyarrow as pa

    return pa.Table.from_pylist(list(records), schema=record_schema(with_attribute_values))


def as_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A table row (or a batch's result columns with ``image``) back as the record it was: the
    fields the record leaves out, which a table holds as nulls, left out again."""
    if row.get("error") is not None:
        return {"image": row["image"], "error": row["error"]}
    record = {name: row.get(name) for name in RECORD_FIELDS if name != "error"}
    record["predictions"] = [
        {k: v for k, v in p.items() if not (k in _OPTIONAL_PREDICTION_FIELDS and v is None)}
        for p in row.get("predictions") or []
    ]
    if row.get("attribute_values") is not None:
        record["attribute_values"] = list(row["attribute_values"])
    return record


def table_to_records(table: pa.Table) -> list[dict[str, Any]]:
    """The records of a table of :func:`record_schema` (what ``--format jsonl`` would have written)."""
    return [as_record(row) for row in table.to_pylist()]


def result_columns(records: Sequence[Mapping[str, Any]], with_attribute_values: bool = False) -> dict[str, list]:
    """Records as the columns a batch gets (:data:`RESULT_COLUMNS`, then ``attribute_values`` when
    asked for): Python lists, ``None`` where a record has no value (an unreadable image has only
    ``error``)."""
    names = RESULT_COLUMNS + (("attribute_values",) if with_attribute_values else ())
    columns: dict[str, list] = {name: [] for name in names}
    for record in records:
        top = (record.get("predictions") or [{}])[0]
        for name in names:
            if name in ("class", "score", "probability"):
                columns[name].append(top.get(name))
            else:
                columns[name].append(record.get(name))
    return columns


def result_types(with_attribute_values: bool = False) -> dict[str, pa.DataType]:
    """The Arrow type of each of :func:`result_columns`' columns."""
    types = _field_types()
    names = RESULT_COLUMNS + (("attribute_values",) if with_attribute_values else ())
    return {name: types[name] for name in names}
