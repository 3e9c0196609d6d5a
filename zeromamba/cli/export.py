"""``zeromamba export``: write a model as ONNX, TorchScript or a ``torch.export`` ExportedProgram,
with its preprocessing as ``preprocess.json`` beside it (see :mod:`zeromamba.exporter`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..hubcheck import check_model_name
from ..terminal import terminal_safe
from .arg_types import whole_number

__all__ = ["register"]

SIZE = whole_number(1, "a whole number of pixels")

#: the formats of zeromamba.exporter.FORMATS, repeated here so that --help does not import torch
FORMATS = ("onnx", "torchscript", "exported-program")


def register(subparsers: Any) -> None:
    """Add ``export`` to the ``zeromamba`` command."""
    p = subparsers.add_parser(
        "export",
        help="write a model as ONNX, TorchScript or an ExportedProgram, with its preprocessing as JSON",
        description="Export the whole predictor (image tensor in; attributes and, with classes, class scores out) "
        "to DIR/model.onnx (or model.torchscript.pt / model.pt2) and DIR/preprocess.json. The written file is "
        "loaded back and checked against eager PyTorch before it is put in place.",
    )
    p.add_argument("model", metavar="MODEL", help="a zoo name (see `zeromamba list`), a Hub repository or a folder")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (default), torchscript, exported-program")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (created)")
    p.add_argument(
        "--input-size",
        nargs=2,
        type=SIZE,
        metavar=("HEIGHT", "WIDTH"),
        help="the graph's image size (default: the model's preprocessing); the batch size is dynamic",
    )
    p.add_argument(
        "--opset",
        type=whole_number(1, "an ONNX opset number"),
        default=None,
        help="ONNX opset, 18 or later (default 18); the file declares exactly it",
    )
    p.add_argument("--no-verify", action="store_true", help="skip loading the file back and comparing it with eager")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit) of MODEL")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="wait at most this long for the Hub")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the written file's path")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    if not args.revision:
        check_model_name(args.model)  # a missing folder or an unpublished variant: before torch is loaded
    from ..exporter import DEFAULT_OPSET, export
    from ..factory import from_pretrained

    kwargs: dict[str, Any] = {"timeout": args.timeout}
    if args.revision:
        kwargs["revision"] = args.revision
    predictor = from_pretrained(args.model, **kwargs)
    if not args.quiet:
        print(
            terminal_safe(f"zeromamba: exporting {args.model} as {args.format} (this traces the model once)"),
            file=sys.stderr,
        )
    result = export(
        predictor,
        args.out,
        format=args.format,
        input_size=tuple(args.input_size) if args.input_size else None,
        opset=args.opset or DEFAULT_OPSET,
        verify=not args.no_verify,
    )
    print(terminal_safe(result.model_file if args.quiet else result))
    return 0
