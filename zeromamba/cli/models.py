"""``zeromamba list``, ``convert`` and ``push``: the zoo, the authors' checkpoints and the Hub."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import DataError, ModelNotAvailableError, ZeroMambaError
from ..terminal import terminal_safe
from ..zoo import TASKS, list_pretrained

__all__ = ["register"]


def cmd_list(args: argparse.Namespace) -> int:
    variants = list_pretrained(task=args.task)
    if args.json:
        print(json.dumps([dict(v.to_dict(), available=v.availability()) for v in variants], indent=2))
        return 0
    print(variants.table())
    print(
        "\nMetrics by 'authors' are the authors' published figures for the checkpoints these weights are converted "
        "from; by 'zeromamba', measured by this project on weights it trained (see MODEL_CARD.md)."
    )
    return 0


def _parse_seen(value: str | None) -> list[int] | None:
    if value is None:
        return None
    if os.path.isfile(value):
        value = Path(value).read_text(encoding="utf-8")
    try:
        return [int(x) for x in re.split(r"[\s,]+", value.strip()) if x]
    except ValueError:
        raise DataError(f"--seen must be class indices separated by commas or whitespace (got {value!r})") from None


def cmd_convert(args: argparse.Namespace) -> int:
    from ..convert import convert_official, verify_conversion
    from ..format import read_config

    out = convert_official(
        args.checkpoint,
        args.out,
        variant=args.variant,
        att_splits=args.att_splits,
        res101=args.res101,
        seen_classes=_parse_seen(args.seen),
        class_names=args.class_names,
        attribute_names=args.attribute_names,
        gamma=args.gamma,
        dataset=args.dataset,
        model_card=not args.no_card,
    )
    cfg = read_config(out)
    if args.verify:
        diff = verify_conversion(args.checkpoint, out)
        print(f"verified: the outputs equal the original checkpoint's (max difference {diff:.3g})")
    print(terminal_safe(f"wrote {out} ({cfg['architecture']}, {', '.join(sorted(p.name for p in out.iterdir()))})"))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError

    from ..hub import push_to_hub

    try:
        url = push_to_hub(
            args.folder, args.repo_id, token=args.token, private=args.private, commit_message=args.message
        )
    except (HfHubHTTPError, OSError) as e:
        if isinstance(e, ZeroMambaError):
            raise
        raise ModelNotAvailableError(f"upload to {args.repo_id!r} failed: {e}") from None
    print(terminal_safe(url))
    return 0


def register(subparsers: Any) -> None:
    """Add ``list``, ``convert`` and ``push`` to the ``zeromamba`` command."""
    p = subparsers.add_parser(
        "list",
        help="list the pretrained variants (zoo) and which of them load now",
        description="The zoo's pretrained variants, and whether each loads now: shipped in the package, in the "
        "Hugging Face cache, downloadable from the Hub, or not published (convert the authors' checkpoint).",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--task", choices=TASKS, help="only variants of this task")
    p.set_defaults(func=cmd_list)

    p = subparsers.add_parser(
        "convert",
        help="convert an authors' ZeroMamba or VMamba checkpoint into a model folder",
        description=(
            "Convert an authors' checkpoint (ZeroMamba {DATASET}_best{CZSL,GZSL}.pth, or a VMamba v2 ImageNet "
            "release file) into a folder of model.safetensors + config.json + README.md that "
            "zeromamba.from_pretrained, timm and the Hub load."
        ),
    )
    p.add_argument("checkpoint", help="the authors' .pth file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--variant", help="the zoo variant it is the source of (e.g. cub-gzsl, vmamba-small)")
    p.add_argument("--att-splits", help="xlsa17 att_splits.mat (class attributes, class names)")
    p.add_argument("--res101", help="xlsa17 res101.mat (labels: the seen classes are those of trainval_loc)")
    p.add_argument("--seen", help="seen class indices (0-based, comma-separated, or a file) instead of --res101")
    p.add_argument("--class-names", help="text file, one class name per line (overrides allclasses_names)")
    p.add_argument("--attribute-names", help="text file, one attribute name per line (e.g. CUB attributes.txt)")
    p.add_argument("--gamma", type=float, help="calibrated-stacking gamma (default: the variant's)")
    p.add_argument("--dataset", help="dataset name for the config and model card")
    p.add_argument("--no-card", action="store_true", help="do not write README.md")
    p.add_argument("--verify", action="store_true", help="check the folder reproduces the checkpoint's outputs")
    p.set_defaults(func=cmd_convert)

    p = subparsers.add_parser("push", help="upload a model folder to the Hugging Face Hub")
    p.add_argument("folder", help="a folder written by `zeromamba convert` or save_pretrained")
    p.add_argument("repo_id", help="owner/name")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)")
    p.add_argument("--message", help="commit message")
    p.set_defaults(func=cmd_push)
