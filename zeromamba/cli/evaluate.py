"""``zeromamba evaluate``: CZSL / GZSL metrics of a model on a dataset (also under ``torchrun``)."""

from __future__ import annotations

import argparse
import os

import torch

from ..data import add_data_arguments, load_dataset
from ..errors import ZeroMambaError
from ..evaluate import evaluate
from ..runtime import setup_distributed, world_and_rank

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
    if world_and_rank()[1] == 0:
        print(result.table)
    return 0
