"""``zeromamba evaluate``: CZSL / GZSL metrics of a model on a dataset (also under ``torchrun``)."""

from __future__ import annotations

import argparse
import os

import torch

from ..attribution import DEFAULT_EXPLAIN_METHOD, EXPLAIN_METHODS
from ..data import add_data_arguments, load_dataset
from ..data.shapes import parse_shapes_spec
from ..errors import ZeroMambaError
from ..evaluate import evaluate, evaluate_explanations
from ..explanation_metrics import format_explanation_table
from ..fileio import write_json
from ..runtime import setup_distributed, world_and_rank
from ..terminal import terminal_safe

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``zeromamba evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="CZSL / GZSL metrics of a model on a dataset",
        description="Evaluate a model: CZSL accuracy, GZSL U/S/H at a gamma, the best gamma, the "
        "seen-unseen curve and AUSUC. Works under torchrun (images are sharded across processes).",
    )
    p.add_argument("model", help="a zoo name or a model folder (as written by zeromamba train)")
    add_data_arguments(p)
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--gamma", type=float, help="calibrated-stacking gamma (default: the model's)")
    p.add_argument("--image-size", type=int, help="input resolution (default: the model's, else 448)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"))
    p.add_argument(
        "--workers", type=int, default=None, help="data-loading worker processes (default: min(4, CPU count))"
    )
    p.add_argument("--json", dest="json_path", help="write the metrics and the whole curve as JSON")
    p.add_argument("--plot", dest="plot_path", help="draw the seen-unseen curve to a PNG")
    p.add_argument(
        "--explain",
        default="auto",
        help="explanation methods to score with the pointing game and mass on object (shapes datasets only, "
        f"which have object masks): comma-separated among {', '.join(EXPLAIN_METHODS)}, 'none', or 'auto' "
        f"(default: {DEFAULT_EXPLAIN_METHOD} and attention on shapes, none elsewhere)",
    )
    p.add_argument("--explain-images", type=int, default=300, help="unseen-class images for the explanation scores")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    if not args.dataset:
        raise ZeroMambaError("--dataset is required")
    env = setup_distributed(args.device)  # under torchrun: join the group, shard the images
    try:
        return _evaluate(args, env.device)
    finally:
        env.close()


def _evaluate(args: argparse.Namespace, device: torch.device) -> int:
    data = load_dataset(
        args.dataset,
        args.image_root,
        args.data_root,
        strip_components=args.strip_components,
        path_regex=args.path_regex,
        attributes_csv=args.attributes_csv,
        unseen_classes=args.unseen_classes,
    )
    result = evaluate(
        args.model,
        data,
        split=args.split,
        gamma=args.gamma,
        batch_size=args.batch_size,
        device=device,
        image_size=args.image_size,
        amp=args.amp,
        num_workers=args.workers if args.workers is not None else min(4, os.cpu_count() or 1),
        json_path=args.json_path,
        plot_path=args.plot_path,
    )
    methods = _explain_methods(args.explain, args.dataset)
    scores = {}
    if methods and world_and_rank()[1] == 0:
        scores = evaluate_explanations(args.model, data, methods, num_images=args.explain_images, device=device)
    if world_and_rank()[1] == 0:
        print(terminal_safe(result.table, keep_newlines=True))  # a dataset's name is a folder's
        if scores:
            title = f"explanations: pointing game and mass on object, {args.explain_images} unseen-class images"
            print(terminal_safe(format_explanation_table(scores.values(), title=title), keep_newlines=True))
        if scores and args.json_path:
            write_json(
                {**result.to_dict(), "explanations": {m: s.to_dict() for m, s in scores.items()}}, args.json_path
            )
    return 0


def _explain_methods(spec: str, dataset: str) -> list[str]:
    """The methods ``--explain`` names (``auto``: the default and attention on shapes datasets)."""
    is_shapes = parse_shapes_spec(dataset) is not None
    if spec == "auto":
        return [DEFAULT_EXPLAIN_METHOD, "attention"] if is_shapes else []
    if spec == "none":
        return []
    methods = [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in methods if m not in EXPLAIN_METHODS]
    if unknown:
        raise ZeroMambaError(f"--explain: unknown methods {unknown}; choose among {', '.join(EXPLAIN_METHODS)}")
    if methods and not is_shapes:
        raise ZeroMambaError("--explain needs object masks, which only the shapes datasets have; use --explain none")
    return methods
