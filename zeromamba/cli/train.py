"""``zeromamba train``: the training recipe on the command line (also under ``torchrun``)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..architectures import ZEROMAMBA_ARCHITECTURES, ZEROMAMBA_VIM_ARCHITECTURES
from ..data import add_data_arguments
from ..errors import ConfigError
from ..terminal import terminal_safe
from ..train import SELECTION_LABELS, load_config_file, resolve_config, train
from ..train.config import CONFIG_FIELDS

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``zeromamba train``."""
    p = subparsers.add_parser(
        "train",
        help="train a model (the paper's recipe per dataset; works under torchrun)",
        description="Train ZeroMamba. Settings: defaults < the dataset's preset < --config FILE < options. "
        "Under torchrun each process takes batch_size / world images per step (DDP, NCCL on CUDA, gloo on CPU).",
    )
    p.add_argument("--config", help="JSON or TOML file with TrainConfig keys")
    add_data_arguments(p)
    p.add_argument(
        "--embeddings", help="attribute embeddings A x 300 (.npy, .safetensors, .pt, .csv; .pkl with --allow-pickle)"
    )
    p.add_argument("--allow-pickle", action="store_true", default=None, help="allow unpickling a trusted local .pkl")
    p.add_argument("--output", dest="output_dir", help="run folder (checkpoints, log.jsonl, model/)")
    p.add_argument(
        "--architecture",
        choices=(*ZEROMAMBA_ARCHITECTURES, *ZEROMAMBA_VIM_ARCHITECTURES),
        help="zeromamba_small: VMamba backbone (default); zeromamba_vim_tiny / zeromamba_vim_small: Vim backbone",
    )
    p.add_argument(
        "--init", help="ImageNet backbone: zoo name (vmamba-small, vim-small), VMamba / Vim release file, or 'none'"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size (default 32)")
    p.add_argument("--lr", type=float, help="backbone + SLP learning rate (1e-3)")
    p.add_argument("--lr-global", type=float, help="GRL head learning rate (1e-3)")
    p.add_argument("--lr-fusion", type=float, help="fusion MLP learning rate (1e-4)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--l1-weight", type=float, help="lambda of the L1 term (CUB 1.0, SUN 0.2, AWA2 0.0)")
    p.add_argument("--gamma", type=float, help="calibrated-stacking gamma (CUB 0.3, SUN 0.35, AWA2 0.98)")
    p.add_argument("--image-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--selection", choices=tuple(SELECTION_LABELS), help="model selection protocol (see docs)")
    p.add_argument("--select-metric", choices=("harmonic", "czsl"))
    p.add_argument(
        "--no-retrain",
        dest="retrain",
        action="store_false",
        default=None,
        help="validation selection: export the selected epoch's weights instead of retraining on trainval",
    )
    p.add_argument("--eval-every", type=int)
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"))
    p.add_argument("--device")
    p.add_argument("--workers", dest="num_workers", type=int)
    p.add_argument("--grad-checkpointing", action="store_true", default=None)
    p.add_argument("--max-steps-per-epoch", type=int, help="cap steps per epoch (smoke tests)")
    p.add_argument("--progress", choices=("auto", "on", "off"))
    p.add_argument("--resume", action="store_true", default=None, help="continue the run in --output")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any TrainConfig key (VALUE parsed as JSON when it can be), e.g. --set l1_weight=0.5",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    given: dict[str, Any] = load_config_file(args.config) if args.config else {}
    for key in CONFIG_FIELDS:
        v = getattr(args, key, None)
        if v is not None:
            given[key] = v
    for item in args.overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            given[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            given[key.strip()] = raw
    cfg = resolve_config(given)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(terminal_safe(f"model saved to {result.model_dir} ({result.selection})"))
    return 0
