"""The ``zeromamba`` command line.

Each feature module contributes its own subcommands through a ``register_cli(subparsers)``
function that adds a parser and sets ``func`` (called with the parsed namespace, returns an exit
code). This file only assembles them, so modules stay independent.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import ZeroMambaError

# modules that provide subcommands, in the order they appear in --help
CLI_MODULES: tuple[str, ...] = (
    "zeromamba.hub",
    "zeromamba.predict_cli",
    "zeromamba.train",
    "zeromamba.evaluate",
    "zeromamba.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zeromamba",
        description="Zero-shot image classification with ZeroMamba.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ZeroMambaError as e:
        print(f"zeromamba: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
