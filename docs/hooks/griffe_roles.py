"""Griffe extension for the API reference: the package's docstrings use Sphinx roles
(``:class:`~zeromamba.results.ClassificationResult```), which Markdown would show as raw text.
Each role becomes inline code of the name as a reader would write it (``~`` keeps the last part)."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|term|doc|ref):`(~?)([^`<]+?)(?:\s*<[^>]+>)?`"
)


def _plain(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRolesAsCode(griffe.Extension):
    """Rewrites Sphinx roles in every docstring the reference loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_plain, obj.docstring.value)
