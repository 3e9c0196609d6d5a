"""The Parquet output of ``zeromamba classify``: complete or absent, and resumable (:class:`ParquetOutput`).

Records are saved as they come into a folder beside the output, ``.NAME.partial/``: a part file
(``part-000001.parquet`` ...) every ``save_every`` records and every :data:`SAVE_SECONDS`, and
whatever is held when the run stops on an error or Ctrl-C; each part is written to a temporary
name and renamed. When every input is done, the parts are joined into ``NAME`` (written to a
temporary name and renamed: a reader never sees half a file) and the folder is removed.

A run that did not finish (killed, interrupted, a failed job) leaves the folder. ``--resume`` reads
which images its parts hold (their ``image`` column, counted, so an input listed twice is done
twice), classifies only the others, and joins the old and new parts: the earlier run's rows come
first. ``settings.json`` in the folder holds what the run was asked for (model, classes, ``top_k``,
``gamma``, precision, ...); resuming with other settings is refused, so one file never mixes two kinds
of answers. Without ``--resume`` an existing partial folder is refused too, never silently dropped.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ZeroMambaError
from .fileio import atomic_write, read_regular_text, refuse_read_only, write_json
from .record_table import record_schema, records_to_table

__all__ = ["SAVE_SECONDS", "ParquetOutput", "partial_folder"]

#: a part is saved at least this often (seconds) while records come
SAVE_SECONDS = 60.0
_PART = re.compile(r"^part-(\d{6,})\.parquet$")
_SETTINGS = "settings.json"


def partial_folder(target: str | Path) -> Path:
    """Where the parts of ``target`` are kept until it is complete: ``.NAME.partial`` beside it."""
    target = Path(target)
    return target.parent / f".{target.name}.partial"


class ParquetOutput:
    """Records into one Parquet file, through resumable parts (see the module docs).

    Args:
        target: the Parquet file to write.
        settings: what the run was asked for (JSON-able); a resume must ask the same.
        resume: continue the partial output of an earlier run when there is one.
        save_every: records per part.
        with_attribute_values: the records carry ``attribute_values`` (a column of the schema).
    """

    def __init__(
        self,
        target: str | Path,
        settings: Mapping[str, Any],
        *,
        resume: bool = False,
        save_every: int = 1000,
        with_attribute_values: bool = False,
    ) -> None:
        self.target = Path(target)
        self.folder = partial_folder(self.target)
        self.settings = json.loads(json.dumps(dict(settings)))  # as it reads back from settings.json
        self.resume = resume
        self.save_every = max(1, int(save_every))
        self.with_values = with_attribute_values
        self.buffer: list[dict[str, Any]] = []
        self.saved_at = time.monotonic()
        self.next_part = 1
        #: rows the earlier run's parts hold (0 without a resume)
        self.done_before = 0

    def start(self, sources: Sequence[str]) -> list[str]:
        """Prepare the partial folder; the sources still to classify (all of them unless resuming).

        Raises:
            ReadOnlyTargetError: the target is a read-only file (refused now, not after the work).
            ZeroMambaError: a partial output without ``resume``, or one made with other settings.
        """
        refuse_read_only(self.target)
        parts = self._parts()
        if self.folder.exists() and not self.resume:
            raise ZeroMambaError(
                f"{self.folder} holds the partial results of a run that did not finish ({len(parts)} part(s)); "
                "add --resume to classify only the images it lacks, or remove the folder to start again"
            )
        if self.folder.exists():
            earlier = self._read_settings()
            if earlier != self.settings:
                changed = sorted(k for k in set(earlier) | set(self.settings) if earlier.get(k) != self.settings.get(k))
                detail = "; ".join(f"{k}: {earlier.get(k)!r} then, {self.settings.get(k)!r} now" for k in changed)
                raise ZeroMambaError(
                    f"cannot resume {self.target}: its partial output was made with other settings ({detail}); "
                    f"rerun with the same settings, or remove {self.folder} to start again"
                )
            done = self._done_images(parts)
            self.done_before = sum(done.values())
            self.next_part = 1 + max((int(_PART.match(p.name).group(1)) for p in parts), default=0)  # type: ignore[union-attr]
            todo = []
            for source in sources:
                if done[source] > 0:
                    done[source] -= 1
                else:
                    todo.append(source)
            return todo
        self.folder.mkdir(parents=True)
        write_json(self.settings, self.folder / _SETTINGS)
        return list(sources)

    def add(self, record: Mapping[str, Any]) -> None:
        """Hold one record; a part is saved when ``save_every`` are held or :data:`SAVE_SECONDS` passed."""
        self.buffer.append(dict(record))
        if len(self.buffer) >= self.save_every or time.monotonic() - self.saved_at >= SAVE_SECONDS:
            self.save()

    def save(self) -> None:
        """Write the records held as the next part (nothing when none are held)."""
        self.saved_at = time.monotonic()
        if not self.buffer:
            return
        import pyarrow.parquet as pq

        table = records_to_table(self.buffer, self.with_values)
        atomic_write(self.folder / f"part-{self.next_part:06d}.parquet", lambda tmp: pq.write_table(table, tmp))
        self.next_part += 1
        self.buffer = []

    def stop(self) -> bool:
        """The run stops before the end: save what is held; whether the partial output holds anything
        (a folder without parts is removed: there is nothing to resume)."""
        self.save()
        if self._parts():
            return True
        shutil.rmtree(self.folder, ignore_errors=True)
        return False

    def finish(self) -> tuple[int, int]:
        """Save what is held, join the parts into the target and remove the folder;
        ``(rows, rows with an error)`` of the target."""
        import pyarrow.parquet as pq

        self.save()
        parts = self._parts()
        schema = record_schema(self.with_values)
        counts = {"rows": 0, "errors": 0}

        def join(tmp: Path) -> None:
            with pq.ParquetWriter(tmp, schema) as writer:
                for part in parts:
                    table = pq.read_table(part).cast(schema)
                    counts["rows"] += table.num_rows
                    counts["errors"] += table.num_rows - table.column("error").null_count
                    writer.write_table(table)

        atomic_write(self.target, join)
        shutil.rmtree(self.folder)
        return counts["rows"], counts["errors"]

    # --- the folder --------------------------------------------------------------------------------

    def _parts(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if _PART.match(p.name))

    def _read_settings(self) -> dict[str, Any]:
        try:
            return json.loads(read_regular_text(self.folder / _SETTINGS, 1 << 20, ZeroMambaError, "settings file"))
        except (FileNotFoundError, json.JSONDecodeError):
            raise ZeroMambaError(
                f"{self.folder} has no readable {_SETTINGS}: it is not a partial output of zeromamba classify "
                "(or was damaged); remove it to start again"
            ) from None

    def _done_images(self, parts: list[Path]) -> Counter[str]:
        import pyarrow.parquet as pq

        done: Counter[str] = Counter()
        for part in parts:
            try:
                done.update(pq.read_table(part, columns=["image"]).column("image").to_pylist())
            except (OSError, ValueError) as e:
                raise ZeroMambaError(
                    f"cannot read the partial output {part}: {e}; remove {self.folder} to start again"
                ) from None
        return done
