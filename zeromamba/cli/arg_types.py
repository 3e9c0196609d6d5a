"""Argument types for the command line's parsers: a bad value is argparse's own usage error, naming
the option and what it takes, instead of a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["positive_number", "whole_number"]


def whole_number(minimum: int, what: str = "a whole number") -> Callable[[str], int]:
    """A parser of integers of at least ``minimum`` (``what`` names the value in the message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            bound = "0 or more" if minimum == 0 else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def positive_number(text: str) -> float:
    """A number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value
