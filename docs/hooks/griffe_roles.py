"""Griffe extension for the API reference: the package's docstrings use Sphinx roles
(``:class:`~zeromamba.results.ClassificationResult```), which Markdown would show as raw text.

Each role becomes inline code of the name as a reader would write it (``~`` keeps the last part),
linked to the object's entry where the site documents it. A role naming a ``zeromamba`` object
that does not exist is a warning, so ``mkdocs build --strict`` fails on a stale reference."""

from __future__ import annotations

import html
import pkgutil
import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|mod|attr|data|exc|obj|const|term|doc|ref):`(?P<short>~?)(?P<target>[^`<]+?)(?:\s*<[^>]+>)?`"
)
#: roles whose target is not a Python object
NOT_OBJECTS = {"term", "doc", "ref"}
PACKAGE = "zeromamba"


def _exists(obj: griffe.Object, path: str) -> bool:
    try:
        obj.modules_collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def _full_path(obj: griffe.Object, target: str) -> str | None:
    """The dotted path a role's target names: absolute if it starts with the package, else looked up
    from the object's class and module outwards (``:meth:`classify``` inside ``Predictor``)."""
    if target == PACKAGE or target.startswith(PACKAGE + "."):
        return target
    scope: griffe.Object | None = obj if obj.is_class or obj.is_module else obj.parent
    while scope is not None:
        if _exists(obj, f"{scope.path}.{target}"):
            return f"{scope.path}.{target}"
        scope = scope.parent
    return None


def _runtime_path(path: str) -> str | None:
    """Where an object lives, found by importing it (``zeromamba.load_model`` is a lazy attribute of
    the package, invisible to static analysis); ``None`` if nothing has that name."""
    try:
        found: Any = pkgutil.resolve_name(path)  # the longest importable module, then attributes
    except (ImportError, AttributeError, ValueError):
        return None
    module, qualname = getattr(found, "__module__", None), getattr(found, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else path  # a module is its own path


class SphinxRolesAsCode(griffe.Extension):
    """Rewrites Sphinx roles in every docstring the reference loads."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != PACKAGE:
            return
        todo: list[griffe.Object] = [pkg]
        while todo:
            obj = todo.pop()
            if obj.is_alias:
                continue
            if obj.docstring is not None:
                obj.docstring.value = ROLE.sub(lambda m, o=obj: self._replace(o, m), obj.docstring.value)
            todo.extend(m for m in obj.members.values() if not m.is_alias)

    def _replace(self, obj: griffe.Object, match: re.Match[str]) -> str:
        target = match["target"].strip().removesuffix("()")
        shown = target.rsplit(".", 1)[-1] if match["short"] else target
        code = f"<code>{html.escape(shown)}</code>"
        if match["role"] in NOT_OBJECTS:
            return code
        path = _full_path(obj, target)
        if path is None:  # another library's name (torch.Tensor) or one this check cannot place
            return code
        if not _exists(obj, path):
            path = _runtime_path(path)
        if path is not None and _exists(obj, path):
            return f'<autoref identifier="{path}" optional>{code}</autoref>'
        if path is None:
            where = f"{obj.relative_filepath}:{obj.lineno}" if obj.lineno else obj.path
            griffe.logger.warning(f"{where}: {match[0]} names {target}, which does not exist")
        return code
