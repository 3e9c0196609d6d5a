"""The ``zeromamba`` command line.

One module per command group, each with ``register(subparsers)`` that adds its commands and sets
``func`` to a handler named ``cmd_<command>`` (called with the parsed namespace, returns an exit
code). This file only assembles them; a ``ZeroMambaError`` becomes one line on stderr and exit
code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import ZeroMambaError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: command-group modules of this package, in the order their commands appear in --help
COMMAND_MODULES: tuple[str, ...] = ("models", "predict", "train", "evaluate", "demo", "app")


def build_parser() -> argparse.ArgumentParser:
    """The ``zeromamba`` argument parser with every command registered."""
    parser = argparse.ArgumentParser(prog="zeromamba", description="Zero-shot image classification with ZeroMamba.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``argv`` defaults to ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ..version import __version__

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
