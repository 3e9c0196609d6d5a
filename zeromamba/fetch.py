"""Images from the web: ``http(s)://`` URLs fetched with a time limit and a size limit.

A leaf (the standard library only): :mod:`zeromamba.images` opens what :func:`fetch_url` returns
like any file. Nothing is written to disk, nothing is retried, and other URL schemes
(``file://``, ``ftp://`` ...) are refused.
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any

from .errors import ConfigError, ImageError
from .version import __version__

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_URL_TIMEOUT", "MAX_BYTES_ENV", "TIMEOUT_ENV", "fetch_url", "is_url"]

#: seconds a URL may take, in all, to download
DEFAULT_URL_TIMEOUT = 10.0
TIMEOUT_ENV = "ZEROMAMBA_URL_TIMEOUT"
#: the largest image file fetched from a URL, in bytes
DEFAULT_MAX_BYTES = 50 * 2**20
MAX_BYTES_ENV = "ZEROMAMBA_URL_MAX_BYTES"


def is_url(source: Any) -> bool:
    """Whether ``source`` is a string with a URL scheme (``https://...``, ``file://...``)."""
    return isinstance(source, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source) is not None


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def fetch_url(url: str, *, timeout: float | None = None, max_bytes: int | None = None) -> bytes:
    """The bytes of an ``http(s)://`` URL, within ``timeout`` seconds in all and ``max_bytes`` bytes.

    Defaults: ``$ZEROMAMBA_URL_TIMEOUT`` (else :data:`DEFAULT_URL_TIMEOUT`) and
    ``$ZEROMAMBA_URL_MAX_BYTES`` (else :data:`DEFAULT_MAX_BYTES`).

    Raises:
        ImageError: another scheme, an HTTP error status, no answer or not all of it in time, or
            more data than allowed.
    """
    import urllib.error
    import urllib.request

    if not url.lower().startswith(("http://", "https://")):
        scheme = url.split("://", 1)[0]
        raise ImageError(f"{url}: {scheme}:// is not supported; give an http(s):// URL or the path of a local file")
    seconds = float(timeout) if timeout is not None else _env_number(TIMEOUT_ENV, DEFAULT_URL_TIMEOUT)
    limit = int(max_bytes if max_bytes is not None else _env_number(MAX_BYTES_ENV, DEFAULT_MAX_BYTES))
    deadline = time.monotonic() + seconds
    request = urllib.request.Request(url, headers={"User-Agent": f"zeromamba/{__version__}"})
    too_big = (
        f"{url} is larger than the download limit of {limit:,} bytes; download it yourself or raise {MAX_BYTES_ENV}"
    )
    try:
        with urllib.request.urlopen(request, timeout=seconds) as response:  # noqa: S310 - http(s) only, checked above
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise ImageError(too_big)
            chunks, total = [], 0
            while chunk := response.read1(1 << 16):  # returns what has arrived: the deadline is checked often
                total += len(chunk)
                if total > limit:
                    raise ImageError(too_big)
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunks.append(chunk)
    except ImageError:
        raise
    except urllib.error.HTTPError as e:
        raise ImageError(f"{url}: the server answered HTTP {e.code} {e.reason}; check the URL") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(e, TimeoutError) or isinstance(reason, TimeoutError):
            raise ImageError(
                f"{url}: no complete answer within {seconds:g} s; check the URL and the network, or raise {TIMEOUT_ENV}"
            ) from None
        raise ImageError(f"cannot fetch {url}: {reason}; check the URL and the network") from None
    return b"".join(chunks)
