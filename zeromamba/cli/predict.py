"""``zeromamba classify`` and ``zeromamba explain``: the predictor on the command line.

``classify`` takes files, folders, glob patterns, URLs and manifests, decodes them in DataLoader
workers, and writes one record per image as results come (``--format table|json|jsonl|csv``,
``--output FILE``; ``--format parquet`` and ``--engine ray``: :mod:`zeromamba.cli.classify_table`).
An unreadable image is reported on stderr (and as a record with ``error``)
and skipped; the exit code is then :data:`~zeromamba.cli.EXIT_SKIPPED`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Callable
from typing import IO, Any

from ..constants import EXPLAIN_DEFAULT_RULE, EXPLAIN_METHODS
from ..errors import ZeroMambaError
from ..hubcheck import check_model_name
from ..manifests import expand_manifests
from ..sources import find_images
from ..terminal import terminal_safe
from ..zoo import list_pretrained
from .arg_types import whole_number
from .classify_table import add_arguments as add_table_arguments
from .classify_table import classify_to_table, wants_table

__all__ = ["register"]

POSITIVE_INT = whole_number(1)
WORKERS = whole_number(0)

FORMATS = ("table", "json", "jsonl", "csv", "parquet")


def default_workers() -> int:
    """Decoding processes when ``--workers`` is not given: half the cores, at most 4, and none below
    4 cores, where a decoding process would take a core from the model (measured on 2 cores)."""
    cores = os.cpu_count() or 1
    return 0 if cores < 4 else min(4, cores // 2)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        help="a zoo name (see `zeromamba list`), a Hub repository 'owner/name' or a local folder "
        "(default: the model available on this machine; `zeromamba list` shows which)",
    )
    p.add_argument(
        "--attributes",
        metavar="FILE",
        help="score against these classes instead of the model's own: a CSV (a header 'class,<attribute>,...' "
        "naming the model's attributes, then one row per class), a JSON file of classes by attribute name "
        '({"red disc": {"red": 1, "circle": 1, "solid": 1}}, others 0) or a .npy C x A matrix',
    )
    p.add_argument("--class-names", metavar="FILE", help="class names, one per line (override those in --attributes)")
    p.add_argument("--gamma", type=float, help="GZSL calibration strength (default: the model's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, auto ... (default: cpu)")
    p.add_argument(
        "--dtype", help="float32 (default), bfloat16, float16 (GPU) or int8 (CPU: the large linear layers in int8)"
    )
    p.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="wait at most this long for the Hub (default 10, or $ZEROMAMBA_HUB_TIMEOUT)",
    )


def register(subparsers: Any) -> None:
    """Add ``classify`` and ``explain`` to the ``zeromamba`` command."""
    p = subparsers.add_parser(
        "classify",
        help="classify images (zero-shot: against the model's classes or your own attribute matrix)",
        description="Classify images with a ZeroMamba model and write the top classes of each image as it is done.",
        epilog="Exit codes: 0 every image classified; 1 an error stopped the command (one line on stderr); "
        "2 a usage error; 3 one or more images could not be read (each is reported on stderr, and as a record "
        "with 'error' in json/jsonl/csv) and were skipped, the others (if any) classified.",
    )
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files, folders (searched recursively), glob patterns (quoted: 'photos/**/*.jpg'), "
        "http(s):// URLs, or manifests: a .parquet, .csv or .jsonl file with a column 'path' or 'url'",
    )
    _add_common(p)
    p.add_argument("--top-k", type=POSITIVE_INT, default=5, help="how many classes to list (default 5)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=8, help="images per forward pass (default 8)")
    p.add_argument(
        "--workers",
        type=WORKERS,
        default=None,
        help=f"processes decoding images ahead of the model (default {default_workers()} here: half the cores, "
        "at most 4, none below 4 cores; 0 decodes in the main process)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default), json, jsonl, csv or parquet (with --output)",
    )
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--output", "-o", metavar="FILE", help="write the results to FILE (complete or not at all)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no notes on stderr")
    add_table_arguments(p)
    p.set_defaults(func=cmd_classify)

    p = subparsers.add_parser(
        "explain",
        help="draw where the evidence for the deciding attributes is: heat maps as a PNG",
        description="Render one heat map per attribute (the attributes that decide the prediction, or --target) "
        "as a PNG: where in the image the evidence for each attribute is.",
    )
    p.add_argument("image", metavar="IMAGE", help="an image file or http(s):// URL")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the figure")
    _add_common(p)
    p.add_argument("--top-k", type=POSITIVE_INT, default=6, help="how many attributes to draw (default 6)")
    p.add_argument(
        "--target",
        nargs="+",
        metavar="NAME",
        help="a class name to explain, or attribute names/indices to draw (default: the predicted class); "
        "explain(target=...) in Python",
    )
    p.add_argument(
        "--method",
        choices=EXPLAIN_METHODS,
        default=None,
        help="how the maps are made: occlusion (how much hiding each part of the image lowers the attribute, "
        "or showing only it in colour raises it), gradient (gradient x activation) or attention (the SLP's "
        f"own attention, the paper's view); default: {EXPLAIN_DEFAULT_RULE}",
    )
    p.add_argument("--panel-size", type=POSITIVE_INT, default=256, help="pixels per panel (default 256)")
    p.add_argument("--json", action="store_true", help="also print the explanation as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no notes on stderr")
    p.set_defaults(func=cmd_explain)


# --- the model ---------------------------------------------------------------------------------


def choose_model(quiet: bool = False) -> str:
    """The zoo variant ``--model`` defaults to: the one cached Hub model, else the shipped one.

    Raises:
        ZeroMambaError: several cached models (choose one), or none available.
    """
    zero_shot = [v for v in list_pretrained() if v.is_zero_shot]
    status = {v.name: v.availability() for v in zero_shot}
    cached = [n for n, s in status.items() if s == "cached"]
    shipped = [n for n, s in status.items() if s == "shipped"]
    if len(cached) > 1:
        listed = ", ".join(f"{n} (cached)" for n in cached) + "".join(f", {n} (shipped)" for n in shipped)
        raise ZeroMambaError(f"several models are available on this machine: {listed}; choose one with --model NAME")
    chosen = cached or shipped
    if not chosen:
        raise ZeroMambaError("no model is available on this machine; give one with --model (see `zeromamba list`)")
    if not quiet:
        where = "in the Hugging Face cache" if cached else "shipped in the package"
        _note(f"using the model {chosen[0]!r} ({where}, the one available here; choose another with --model)")
    return chosen[0]


def _load(args: argparse.Namespace) -> Any:
    model = args.model or choose_model(args.quiet)
    if not args.revision:
        check_model_name(model)  # a missing folder or an unpublished variant: before torch is loaded
    from ..factory import from_pretrained

    kwargs: dict[str, Any] = {"device": args.device, "dtype": args.dtype, "timeout": args.timeout}
    if args.revision:
        kwargs["revision"] = args.revision
    return from_pretrained(model, **kwargs)


def _note(text: str) -> None:
    print(f"zeromamba: {terminal_safe(text)}", file=sys.stderr, flush=True)


# --- classify ----------------------------------------------------------------------------------


class _Records:
    """Writes results as they come, one record per image, in one of :data:`FORMATS`."""

    def __init__(self, fmt: str, stream: IO[str], top_k: int):
        self.fmt, self.stream, self.top_k = fmt, stream, top_k
        self.count = 0
        # rows end in "\n", but the writer is told "\r\n" so that it quotes a cell holding either: with
        # "\n" alone it leaves a "\r" bare (Python < 3.12), which readers take as the end of the row
        self.row_text = io.StringIO()
        self.csv = csv.writer(self.row_text, lineterminator="\r\n") if fmt == "csv" else None
        if self.csv is not None:
            fields = ["class", "index", "score", "probability", "calibrated", "seen"]
            self._csv_row(
                ["image", "error", "ranked_by", "gamma", "low_confidence", "confidence_note"]
                + [f"{f}_{r}" for r in range(1, top_k + 1) for f in fields]
            )
        elif fmt == "json":
            stream.write("[")

    def write(self, item: Any) -> None:
        record = item.to_record()
        if self.fmt == "table":
            if "error" in record:  # reported on stderr; the table lists what was classified
                return
            self.stream.write(("\n" if self.count else "") + str(item) + "\n")
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(record) + "\n")
        elif self.fmt == "json":
            self.stream.write(("," if self.count else "") + "\n  " + json.dumps(record))
        else:
            self._csv_row(_csv_row(record, self.top_k))
        self.count += 1
        self.stream.flush()

    def _csv_row(self, cells: list[Any]) -> None:
        assert self.csv is not None
        self.csv.writerow(cells)
        self.stream.write(self.row_text.getvalue()[:-2] + "\n")
        self.row_text.seek(0)
        self.row_text.truncate()

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if self.count else "]\n")
        self.stream.flush()


def _csv_row(record: dict[str, Any], top_k: int) -> list[Any]:
    from ..results import spreadsheet_safe

    row: list[Any] = [record["image"], record.get("error", ""), record.get("ranked_by", ""), record.get("gamma") or ""]
    row += [record["low_confidence"] if "low_confidence" in record else "", record.get("confidence_note", "")]
    predictions = record.get("predictions", [])
    for r in range(top_k):
        p = predictions[r] if r < len(predictions) else {}
        row += [p.get(k, "") for k in ("class", "index", "score", "probability", "calibrated", "seen")]
    return [spreadsheet_safe(cell) for cell in row]  # names and paths from outside: no formulas


def _progress(total: int, args: argparse.Namespace) -> Any:
    from tqdm import tqdm

    show = not args.quiet and sys.stderr.isatty() and total > args.batch_size
    return tqdm(total=total, file=sys.stderr, unit="img", desc="classify", disable=not show, dynamic_ncols=True)


def _run_classify(args: argparse.Namespace, predictor: Any, sources: list[str], out: IO[str]) -> tuple[int, int, int]:
    """Classify ``sources`` writing records to ``out``; returns ``(classified, skipped, low confidence)``."""
    from ..results import ImageFailure

    records = _Records(args.format, out, args.top_k)
    workers = default_workers() if args.workers is None else args.workers
    done = skipped = unsure = 0
    with _progress(len(sources), args) as bar:
        stream = predictor.classify_iter(
            sources,
            attributes=args.attributes,
            class_names=args.class_names,
            top_k=args.top_k,
            gamma=args.gamma,
            batch_size=args.batch_size,
            num_workers=workers,
            skip_errors=True,
        )
        for item in stream:
            # lines on the bar's terminal: the bar steps aside while they are written
            failure = isinstance(item, ImageFailure)
            clear = not bar.disable and (failure or out is sys.stdout)
            writing: Callable[[], Any] = bar.external_write_mode if clear else contextlib.nullcontext
            with writing():
                if failure:
                    skipped += 1
                    _note(f"skipped {item.source}: {item.reason}")
                else:
                    done += 1
                    unsure += item.low_confidence
                records.write(item)
            bar.update(1)
    records.close()
    return done, skipped, unsure


def cmd_classify(args: argparse.Namespace) -> int:
    from ..fileio import atomic_write
    from . import EXIT_SKIPPED

    if args.json:
        args.format = "json"
    sources = expand_manifests(find_images(args.images))
    if wants_table(args):
        if args.workers is None:
            args.workers = default_workers()
        return classify_to_table(args, sources, choose_model=choose_model, load=_load, progress=_progress)
    predictor = _load(args)
    result: dict[str, tuple[int, int, int]] = {}
    if args.output:

        def write(tmp: Any) -> None:
            # surrogateescape: a file name that is not valid UTF-8 is written back as its own bytes
            with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
                result["counts"] = _run_classify(args, predictor, sources, f)

        try:
            atomic_write(args.output, write)
        except OSError as e:
            raise ZeroMambaError(f"cannot write {args.output}: {e.strerror or e}") from None
    else:
        if args.format == "csv" and hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(errors="surrogateescape")  # as above (JSON escapes it, tables show \udcff)
        result["counts"] = _run_classify(args, predictor, sources, sys.stdout)
    done, skipped, unsure = result["counts"]
    if unsure and not args.quiet:
        _note(
            f"{unsure} of {done} answers are low confidence (marked LOW CONFIDENCE / low_confidence: near chance "
            "or ambiguous; see the README)"
        )
    if skipped:
        # 3 whether or not some images were classified: the images were the trouble, not the command
        if done:
            _note(f"{skipped} of {len(sources)} images could not be read and were skipped (listed above)")
        else:
            _note(f"none of the {len(sources)} images could be read (listed above); nothing was classified")
        return EXIT_SKIPPED
    if args.output and not args.quiet:
        _note(f"wrote {done} results to {args.output}")
    return 0


# --- explain -----------------------------------------------------------------------------------


def _target(values: list[str] | None) -> Any:
    if not values:
        return None
    return [int(v) if v.isdigit() else v for v in values]


def cmd_explain(args: argparse.Namespace) -> int:
    predictor = _load(args)
    targets = _target(args.target)
    if targets is not None and len(targets) == 1:
        targets = targets[0]
    explanation = predictor.explain(
        args.image,
        target=targets,
        top_k=args.top_k,
        attributes=args.attributes,
        class_names=args.class_names,
        gamma=args.gamma,
        method=args.method,
    )
    out = os.fspath(args.out)
    directory = os.path.dirname(out)
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure = explanation.save_png(out, panel_size=args.panel_size)
    if args.json:
        print(explanation.to_json(indent=2))
    else:
        print(explanation)
        if not args.quiet:
            _note(f"wrote {out} ({figure.size[0]}x{figure.size[1]})")
    return 0
