"""The ``zeromamba`` command line.

One module per command group, each with ``register(subparsers)`` that adds its commands and sets
``func`` to a handler named ``cmd_<command>`` (called with the parsed namespace, returns an exit
code). This file only assembles them, lazily: :data:`COMMANDS` names each command's module and
its one-line help, and only the module of the command being run is imported, so ``zeromamba
--help`` and ``zeromamba list`` start without torch. A new command goes into :data:`COMMANDS`
(tests/app/test_cli_startup.py checks the table against the modules).

A :class:`~zeromamba.errors.ZeroMambaError` becomes one line on stderr and exit code 1
(``--debug`` shows the traceback too); see :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from ..errors import ZeroMambaError
from ..terminal import terminal_safe

__all__ = ["ALL", "COMMANDS", "EXIT_CODES", "EXIT_SKIPPED", "build_parser", "main"]

#: command -> (the module of this package that registers it, its line in ``zeromamba --help``);
#: the commands of one module stay together, in the order the module adds them
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("models", "list the pretrained variants (zoo) and which of them load now"),
    "convert": ("models", "convert an authors' ZeroMamba or VMamba checkpoint into a model folder"),
    "push": ("models", "upload a model folder to the Hugging Face Hub"),
    "classify": ("predict", "classify images (zero-shot: against the model's classes or your own attribute matrix)"),
    "explain": ("predict", "draw where the evidence for the deciding attributes is: heat maps as a PNG"),
    "train": ("train", "train a model (the paper's recipe per dataset; works under torchrun)"),
    "evaluate": ("evaluate", "CZSL / GZSL metrics of a model on a dataset"),
    "export": ("export", "write a model as ONNX, TorchScript or an ExportedProgram, with its preprocessing as JSON"),
    "demo": ("demo", "zero-shot classification of unseen classes with the embedded shapes model (offline)"),
    "app": ("app", "a web page to try a model: upload or draw an image, define classes by their attributes"),
    "env": ("env", "what this machine runs: versions, the CPU's instruction sets, the C kernels, int8 and the GPU"),
}
#: command-group modules of this package, in the order their commands appear in --help
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(module for module, _ in COMMANDS.values()))

#: one or more images could not be read and were skipped (all of them, or some: the others were classified)
EXIT_SKIPPED = 3
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "an error (one line on stderr saying what to do; --debug shows the traceback)",
    2: "a usage error (unknown command or option)",
    EXIT_SKIPPED: "classify: one or more images could not be read and were skipped (each reported), the others "
    "(if any) classified",
    130: "interrupted (Ctrl-C)",
}

#: pass as ``command`` to :func:`build_parser` to register every command for real
ALL = "*"


def build_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    """The ``zeromamba`` argument parser. Only the module of ``command`` is imported and registers
    its commands; the others are listed by name and help (``ALL``: every module registers)."""
    epilog = "exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="zeromamba", description="Zero-shot image classification with ZeroMamba.", epilog=epilog
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors (also after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = COMMANDS.get(command or "", (None,))[0] if command != ALL else None
    for name, (module, text) in COMMANDS.items():
        if name in sub.choices:
            continue
        if command == ALL or module == wanted:
            importlib.import_module(f"{__name__}.{module}").register(sub)
        else:
            sub.add_parser(name, help=text, add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``argv`` defaults to ``sys.argv[1:]``); returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list or os.environ.get("ZEROMAMBA_DEBUG", "") not in ("", "0")
    args_list = [a for a in args_list if a != "--debug"]
    parser = build_parser(_command_of(args_list))
    args = parser.parse_args(args_list)
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
        if debug:
            traceback.print_exc()
        # one line: a multi-line message (a list of mismatched tensors) is joined with "; "
        message = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"zeromamba: error: {terminal_safe(message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zeromamba: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `zeromamba classify ... | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
