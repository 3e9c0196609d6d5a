"""What the web page takes from a visitor, and how much of it it keeps.

* **Files it stored itself, nothing else.** An image, a drawing or a class file reaches the page's
  code only as a regular file inside the server's own upload folder (where Gradio writes what a
  browser uploads): a payload naming a URL, or a path anywhere else on the server, is refused with
  :data:`NOT_A_PROXY`, and Gradio's own fetching of a URL payload is switched off on the page's
  components (:func:`refuse_fetching`), so no visitor can make the server open a connection.
* **Classes defined on the page are bounded**: at most :data:`PAGE_MAX_CLASSES` classes and
  :data:`PAGE_MAX_CLASS_BYTES` bytes (names in UTF-8 plus 4 bytes per attribute value; Python's own
  bookkeeping, about 200 bytes a class, comes on top) per visitor, and class files over
  :data:`PAGE_MAX_CLASS_FILE_BYTES` are refused before they are read. They are kept
  :data:`DEFAULT_SESSION_TTL` seconds after their last change, dropped when the visitor's tab closes,
  and at most :data:`DEFAULT_MAX_SESSIONS` visitors' sessions are kept at once (the oldest go first).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .errors import AttributeMatrixError, ZeroMambaError

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_SESSION_TTL",
    "NOT_A_PROXY",
    "PAGE_MAX_CLASSES",
    "PAGE_MAX_CLASS_BYTES",
    "PAGE_MAX_CLASS_FILE_BYTES",
    "check_class_file",
    "check_page_classes",
    "is_remote",
    "page_class_bytes",
    "refuse_fetching",
    "stored_upload_path",
]

#: classes one visitor may define on the page
PAGE_MAX_CLASSES = 500
#: bytes of classes one visitor may define (names in UTF-8 + 4 bytes per attribute value)
PAGE_MAX_CLASS_BYTES = 1_000_000
#: the largest class file (CSV or JSON) the page reads
PAGE_MAX_CLASS_FILE_BYTES = 2_000_000
#: seconds the classes defined on the page are kept after their last change
DEFAULT_SESSION_TTL = 1800.0
#: visitors' sessions kept at once (Gradio's ``state_session_capacity``): beyond, the oldest go
DEFAULT_MAX_SESSIONS = 500

NOT_A_PROXY = (
    "the page reads only files uploaded to it or drawn on it: it does not fetch URLs or open files on the "
    "server; download the file and upload it"
)


def is_remote(value: str) -> bool:
    """Whether a payload path names something to fetch (``scheme://...``, ``data:...``) rather than a file."""
    return "://" in value or value.startswith("data:")


def _field(payload: Any, name: str) -> Any:
    return payload.get(name) if isinstance(payload, Mapping) else getattr(payload, name, None)


def stored_upload_path(
    payload: Any, folder: str | os.PathLike, error: type[ZeroMambaError] = ZeroMambaError
) -> str | None:
    """The file an upload component's payload names, if the server stored it itself: a regular file
    inside ``folder`` (the server's upload folder), links resolved; ``None`` for no payload.

    Raises:
        ``error``: a payload that names a URL (also one with no path), or a path outside ``folder``
            or that is not a regular file.
    """
    if payload is None:
        return None
    path = _field(payload, "path")
    if not path:
        if _field(payload, "url"):
            raise error(NOT_A_PROXY)
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise error(NOT_A_PROXY)
    path = os.fspath(path)
    if not isinstance(path, str) or is_remote(path):
        raise error(NOT_A_PROXY)
    real, root = os.path.realpath(path), os.path.realpath(folder)
    if os.path.commonpath([real, root]) != root or not os.path.isfile(real):
        raise error(NOT_A_PROXY)
    return real


def refuse_fetching(component: Any, make_error: Callable[[str], Exception]) -> None:
    """Switch off Gradio's fetching of a URL given as a file payload on ``component`` (Gradio would
    download it into its cache before the page's code sees it): such a payload gets
    ``make_error(NOT_A_PROXY)`` instead."""
    moves = ("async_move_resource_to_block_cache", "move_resource_to_block_cache")
    for attribute in moves:
        original = getattr(component, attribute, None)
        if original is None:
            continue

        def check(url_or_file_path: Any) -> None:
            if url_or_file_path is not None and is_remote(os.fspath(url_or_file_path)):
                raise make_error(NOT_A_PROXY)

        if attribute.startswith("async"):

            async def local_only(url_or_file_path: Any, _move: Any = original) -> Any:
                check(url_or_file_path)
                return await _move(url_or_file_path)

        else:

            def local_only(url_or_file_path: Any, _move: Any = original) -> Any:  # type: ignore[misc]
                check(url_or_file_path)
                return _move(url_or_file_path)

        setattr(component, attribute, local_only)


def page_class_bytes(custom: Mapping[str, np.ndarray]) -> int:
    """The bytes the page's classes count against :data:`PAGE_MAX_CLASS_BYTES`."""
    return sum(len(name.encode("utf-8")) + 4 * int(np.size(vector)) for name, vector in custom.items())


def check_page_classes(custom: Mapping[str, np.ndarray]) -> None:
    """Refuse classes beyond the page's limits.

    Raises:
        AttributeMatrixError: more than :data:`PAGE_MAX_CLASSES` classes or :data:`PAGE_MAX_CLASS_BYTES` bytes.
    """
    if len(custom) > PAGE_MAX_CLASSES:
        raise AttributeMatrixError(
            f"{len(custom)} classes: the page keeps at most {PAGE_MAX_CLASSES} classes per visitor; remove some "
            "(Remove the page's classes), or use the Python API or the command line for more"
        )
    size = page_class_bytes(custom)
    if size > PAGE_MAX_CLASS_BYTES:
        raise AttributeMatrixError(
            f"the classes take {size:,} bytes: the page keeps at most {PAGE_MAX_CLASS_BYTES:,} bytes of classes "
            "per visitor (names and values); remove some, or use the Python API or the command line for more"
        )


def check_class_file(path: str | os.PathLike) -> None:
    """Refuse a class file over :data:`PAGE_MAX_CLASS_FILE_BYTES` before reading it.

    Raises:
        AttributeMatrixError: naming the file by its own name (not the server's upload folder).
    """
    size = os.stat(path).st_size
    if size > PAGE_MAX_CLASS_FILE_BYTES:
        raise AttributeMatrixError(
            f"{os.path.basename(path)} is {size / 1e6:.1f} MB: the page reads class files of at most "
            f"{PAGE_MAX_CLASS_FILE_BYTES / 1e6:g} MB ({PAGE_MAX_CLASSES} classes at most); use the Python API or "
            "the command line for more"
        )
