"""``zeromamba classify`` and ``zeromamba explain``: the predictor on the command line."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register"]

DEFAULT_MODEL = "cub-gzsl"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"a zoo name (see `zeromamba list`), a Hub repository or a local directory (default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--attributes",
        metavar="FILE",
        help="score against these classes instead of the model's own: a CSV (class name, then one column per "
        "attribute; optional header row of attribute names) or a .npy C x A matrix",
    )
    p.add_argument("--class-names", metavar="FILE", help="class names, one per line (override those in --attributes)")
    p.add_argument("--gamma", type=float, help="GZSL calibration strength (default: the model's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--dtype", help="float32 (default), bfloat16 or float16 (GPU)")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")


def register(subparsers: Any) -> None:
    """Add ``classify`` and ``explain`` to the ``zeromamba`` command."""
    p = subparsers.add_parser(
        "classify",
        help="classify images (zero-shot: against the model's classes or your own attribute matrix)",
        description="Classify images with a ZeroMamba model and print the top classes per image.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    _add_common(p)
    p.add_argument("--top-k", type=_positive_int, default=5, help="how many classes to list (default 5)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="images per forward pass (default 8)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_classify)

    p = subparsers.add_parser(
        "explain",
        help="draw where the model looked: attribute attention heat maps as a PNG",
        description="Render the SLP attention maps of the most important attributes of an image as a PNG.",
    )
    p.add_argument("image", metavar="IMAGE", help="an image file")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the figure")
    _add_common(p)
    p.add_argument("--top-k", type=_positive_int, default=6, help="how many attributes to draw (default 6)")
    p.add_argument(
        "--target",
        nargs="+",
        metavar="NAME",
        help="a class name to explain, or attribute names/indices to draw (default: the predicted class)",
    )
    p.add_argument("--panel-size", type=_positive_int, default=256, help="pixels per panel (default 256)")
    p.add_argument("--json", action="store_true", help="also print the explanation as JSON")
    p.set_defaults(func=cmd_explain)


def _load(args: argparse.Namespace) -> Any:
    from ..factory import from_pretrained

    kwargs: dict[str, Any] = {"device": args.device, "dtype": args.dtype}
    if args.revision:
        kwargs["revision"] = args.revision
    return from_pretrained(args.model, **kwargs)


def cmd_classify(args: argparse.Namespace) -> int:
    predictor = _load(args)
    predictor.batch_size = args.batch_size
    results = predictor.classify(
        list(args.images),
        attributes=args.attributes,
        class_names=args.class_names,
        top_k=args.top_k,
        gamma=args.gamma,
    )
    if args.json:
        print(results.to_json(indent=2))
    else:
        print(results)
    return 0


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
        targets,
        top_k=args.top_k,
        attributes=args.attributes,
        class_names=args.class_names,
        gamma=args.gamma,
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
        print(f"wrote {out} ({figure.size[0]}x{figure.size[1]})", file=sys.stderr)
    return 0
