"""MkDocs hook: the command-line reference, generated at build time from the argparse parsers of
``zeromamba.cli`` (each command's ``--help``), so the page cannot drift from the program.

A page asks for it with the line ``<!-- cli-reference -->``."""

from __future__ import annotations

import argparse
import os
from typing import Any

MARKER = "<!-- cli-reference -->"
#: a fixed width, so the generated text does not depend on the terminal that builds the site
HELP_WIDTH = "100"


def command_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's parser, every command registered for real."""
    from zeromamba.cli import ALL, COMMANDS, build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        parser = build_parser(ALL)
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, {name: sub.choices[name] for name in COMMANDS}


def _help(parser: argparse.ArgumentParser) -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        return parser.format_help().rstrip()
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def cli_reference() -> str:
    """Markdown: ``zeromamba --help``, then one section per command with its ``--help``."""
    from zeromamba.cli import COMMANDS

    parser, commands = command_parsers()
    parts = ["## zeromamba", "", "```text", _help(parser), "```", ""]
    for name, command in commands.items():
        parts += [f"## zeromamba {name}", "", COMMANDS[name][1][:1].upper() + COMMANDS[name][1][1:] + ".", ""]
        parts += ["```text", _help(command), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: put the reference where a page asks for it."""
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
