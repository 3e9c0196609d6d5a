"""Classes defined by attribute name: ``{"red disc": {"red": 1, "circle": 1, "solid": 1}}``.

The natural way to describe a class is to name the attributes it has. A definition maps attribute
names to values; the attributes it does not name are 0. Names match the model's attribute names
exactly, else ignoring case and separators (``Has_Stripes``, ``has-stripes`` and ``has stripes``
are one name) when that is unambiguous; a name that matches none is an error that suggests the close
ones. The same matching reads a CSV header (:func:`match_columns`). A JSON file holds the same dict
(:func:`read_class_json`); every class name, from any source, must be unique
(:func:`require_unique_names`).
"""

from __future__ import annotations

import difflib
import json
import numbers
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .class_table import read_text_file
from .errors import AttributeMatrixError

__all__ = ["match_columns", "name_key", "read_class_json", "require_unique_names", "vector_from_names"]


def name_key(name: str) -> str:
    """A name without case and separators: ``Has_Stripes``, ``has-stripes``, ``has stripes`` all
    become ``hasstripes``."""
    return re.sub(r"[\W_]+", "", name.casefold())


def require_unique_names(names: Sequence[str], source: str) -> None:
    """Refuse a list of class names that holds one name twice (two classes nobody could tell apart).

    Raises:
        AttributeMatrixError: naming the repeated names and ``source``.
    """
    counts = Counter(names)
    if len(counts) == len(names):
        return
    dup = [f"{n!r} ({k} times)" for n, k in counts.items() if k > 1]
    more = f" and {len(dup) - 5} more" if len(dup) > 5 else ""
    raise AttributeMatrixError(
        f"{source}: duplicate class names {', '.join(dup[:5])}{more}; each class needs a name of its own"
    )


def _close(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=2, cutoff=0.6)
    if not close:  # "Cirlce" against "circle": compare the loose forms too
        keys = {name_key(c): c for c in candidates}
        close = [keys[k] for k in difflib.get_close_matches(name_key(name), list(keys), n=2, cutoff=0.6)]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _resolve(given: Sequence[str], attribute_names: Sequence[str]) -> tuple[dict[int, int], list[int]]:
    """``given[i] -> attribute index`` (exact first, then loose when unambiguous) and the positions
    in ``given`` that name no attribute."""
    exact = {a: j for j, a in enumerate(attribute_names)}
    found = {i: exact[g] for i, g in enumerate(given) if g in exact}
    taken = set(found.values())
    loose: dict[str, list[int]] = {}
    for j, a in enumerate(attribute_names):
        if j not in taken:
            loose.setdefault(name_key(a), []).append(j)
    for i, g in enumerate(given):
        if i in found:
            continue
        hits = [j for j in loose.get(name_key(g), []) if j not in taken]
        if len(hits) == 1 and sum(name_key(h) == name_key(g) for k, h in enumerate(given) if k not in found) == 1:
            found[i] = hits[0]
            taken.add(hits[0])
    return found, [i for i in range(len(given)) if i not in found]


def match_columns(header: Sequence[str], attribute_names: Sequence[str], source: str) -> list[int]:
    """For each of the model's attributes, the index of the header column that names it.

    Names match exactly, else ignoring case and separators (space, ``_``, ``-``, ``:`` ...) when
    that is unambiguous; the order of the columns is free.

    Raises:
        AttributeMatrixError: a column naming no attribute, an attribute with no column, or a name
            given twice; the message names ``source`` and suggests close names.
    """
    dup = sorted(h for h, k in Counter(header).items() if k > 1)
    if dup:
        raise AttributeMatrixError(f"{source}: the header names {', '.join(repr(d) for d in dup)} more than once")
    found, unknown_at = _resolve(header, attribute_names)
    order = {j: i for i, j in found.items()}
    missing = [a for j, a in enumerate(attribute_names) if j not in order]
    unknown = [header[i] for i in unknown_at]
    if not missing and not unknown:
        return [order[j] for j in range(len(attribute_names))]
    parts = []
    if unknown:
        described = [f"{u!r}{_close(u, missing or list(attribute_names))}" for u in unknown[:10]]
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        parts.append(f"unknown column(s) {', '.join(described)}{more}")
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        parts.append(f"no column for attribute(s) {', '.join(repr(m) for m in missing[:10])}{more}")
    raise AttributeMatrixError(
        f"{source}: the header does not match the model's {len(attribute_names)} attributes: {'; '.join(parts)}. "
        "Name one column per attribute (any order; case and separators do not matter), as in "
        "predictor.attribute_names"
    )


def _attribute_list(attribute_names: Sequence[str]) -> str:
    shown = ", ".join(attribute_names[:20])
    return shown + (f", ... ({len(attribute_names)} in all)" if len(attribute_names) > 20 else "")


def vector_from_names(values: Mapping[Any, Any], attribute_names: Sequence[str] | None, class_name: str) -> np.ndarray:
    """The float64 attribute vector of one class given as ``{attribute name: value}`` (others 0).

    Raises:
        AttributeMatrixError: the model has no attribute names, a name that matches no attribute
            (with the close ones), two names for one attribute, or a value that is not a real number.
    """
    if attribute_names is None:
        raise AttributeMatrixError(
            f"class {class_name!r} names its attributes, but the model has no attribute names to match them to; "
            "give a vector of values in the model's attribute order, or a model with attribute_names"
        )
    given = [str(k) for k in values]
    found, unknown_at = _resolve(given, attribute_names)
    keys = {name_key(attribute_names[j]): attribute_names[j] for j in found.values()}
    again = [given[i] for i in unknown_at if name_key(given[i]) in keys]
    if again:
        raise AttributeMatrixError(f"class {class_name!r} gives attribute {keys[name_key(again[0])]!r} more than once")
    if unknown_at:
        described = ", ".join(f"{given[i]!r}{_close(given[i], attribute_names)}" for i in unknown_at[:10])
        raise AttributeMatrixError(
            f"class {class_name!r}: unknown attribute(s) {described}; the model's attributes are "
            f"{_attribute_list(attribute_names)}"
        )
    twice = [attribute_names[j] for j, k in Counter(found.values()).items() if k > 1]
    if twice or len(set(given)) != len(given):
        raise AttributeMatrixError(f"class {class_name!r} gives attribute {(twice or given)[0]!r} more than once")
    vector = np.zeros(len(attribute_names), dtype=np.float64)
    for i, value in enumerate(values.values()):
        if isinstance(value, str) or not isinstance(value, (numbers.Real, np.bool_)):
            raise AttributeMatrixError(
                f"class {class_name!r}, attribute {given[i]!r}: the value must be a number (1 for has, 0 for has "
                f"not, or a strength), got {value!r}"
            )
        vector[found[i]] = float(value)
    return vector


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k, n in Counter(keys).items() if n > 1)
        raise AttributeMatrixError(f"the key {dup!r} appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> float:
    raise AttributeMatrixError(f"{name} is not a number JSON allows; give finite numbers")


def read_class_json(path: Path) -> dict[str, Any]:
    """A JSON file of class definitions: ``{class name: {attribute name: value}}`` or
    ``{class name: [value per attribute]}``.

    Raises:
        AttributeMatrixError: unreadable or not JSON, not an object of classes, a key given twice
            (a class, or an attribute within a class: JSON readers would keep the last silently).
    """
    text = read_text_file(path, "class definitions", "JSON text")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except AttributeMatrixError as e:
        raise AttributeMatrixError(f"{path}: {e}") from None
    except json.JSONDecodeError as e:
        raise AttributeMatrixError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except (RecursionError, ValueError) as e:  # nested too deeply; an integer of thousands of digits
        raise AttributeMatrixError(f"{path} cannot be read as class definitions ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or not data:
        raise AttributeMatrixError(
            f"{path}: expected a JSON object of classes, e.g. "
            '{"red disc": {"red": 1, "circle": 1, "solid": 1}}, got '
            + ("an empty object" if isinstance(data, dict) else type(data).__name__)
        )
    for name, value in data.items():
        if not isinstance(value, (dict, list)):
            raise AttributeMatrixError(
                f'{path}: class {name!r} must be an object of attribute values ({{"red": 1}}) or a list of '
                f"values, got {type(value).__name__}"
            )
    return data
