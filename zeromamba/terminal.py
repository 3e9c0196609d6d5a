"""Text from outside made safe to print on a terminal (:func:`terminal_safe`).

Class, attribute and tensor names from a model folder or a CSV, file names from a folder, URLs and
what a server said all reach the terminal. Raw, an ESC sequence in one of them could recolour or
clear the screen, rewrite the title or move the cursor; a newline or carriage return could forge a
table row or an error line; a right-to-left override could show a name backwards; a lone surrogate
(an undecodable file name) makes ``print`` fail. So everything the package prints passes through
:func:`terminal_safe`, which shows such characters as escapes (``\\x1b``, ``\\n``, ``\\0``,
``\\u202e``). JSON and CSV output keep the exact text. A leaf: the standard library only.
"""

from __future__ import annotations

import re

__all__ = ["terminal_safe"]

# C0 and C1 controls and DEL (Unicode category Cc), the line and paragraph separators, the
# bidirectional embedding, override and isolate marks, and lone surrogates (category Cs)
_OTHERS = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(f"[\x00-\x1f{_OTHERS}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")
_NAMED = {"\0": "\\0", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: object, *, keep_newlines: bool = False) -> str:
    """``str(text)`` with every character that could act on a terminal shown as an escape.

    Escaped: the C0 and C1 control characters and DEL (``ESC`` as ``\\x1b``, NUL as ``\\0``, tab,
    newline and carriage return as ``\\t``, ``\\n``, ``\\r``), the Unicode line and paragraph
    separators, the bidirectional control marks (``\\u202e``) and lone surrogates. Everything else,
    backslashes and printable non-ASCII text included, is kept as it is, so ordinary names print
    unchanged (the escape is for reading, not a reversible encoding: use JSON for exact text).

    Args:
        text: the text (anything else is passed through ``str`` first).
        keep_newlines: keep ``\\n`` as a line break, for a block of several lines that this
            package laid out itself (a name inside it should then be escaped on its own first).
    """
    text = text if isinstance(text, str) else str(text)
    pattern = _UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)
