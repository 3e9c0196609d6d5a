"""Where images come from: files, folders and glob patterns (:func:`find_images`), and
``http(s)://`` URLs fetched within one deadline and a size limit (:func:`fetch_url`).

A leaf (the standard library only), so ``zeromamba classify`` finds its inputs, and reports a
missing folder, before torch is imported. :mod:`zeromamba.images` opens what :func:`fetch_url`
returns like any file. Nothing is written to disk, nothing is retried, and other URL schemes
(``file://``, ``ftp://`` ...) are refused, on the first URL and on every redirect hop alike; at
most :data:`MAX_REDIRECTS` redirects are followed.
"""

from __future__ import annotations

import glob
import math
import os
import re
import time
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError, ImageError
from .terminal import terminal_safe
from .version import __version__

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_URL_TIMEOUT",
    "IMAGE_EXTENSIONS",
    "MAX_BYTES_ENV",
    "MAX_REDIRECTS",
    "TIMEOUT_ENV",
    "fetch_url",
    "find_images",
    "is_url",
]

#: seconds a URL may take, in all, to download
DEFAULT_URL_TIMEOUT = 10.0
TIMEOUT_ENV = "ZEROMAMBA_URL_TIMEOUT"
#: the largest image file fetched from a URL, in bytes
DEFAULT_MAX_BYTES = 50 * 2**20
MAX_BYTES_ENV = "ZEROMAMBA_URL_MAX_BYTES"
#: the most redirects one URL may take (each hop must be http(s) too)
MAX_REDIRECTS = 5


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


def _check_scheme(url: str, origin: str | None = None) -> None:
    if not url.lower().startswith(("http://", "https://")):
        scheme = url.split("://", 1)[0] if "://" in url else url.split(":", 1)[0]
        if origin is None:
            raise ImageError(f"{url}: {scheme}:// is not supported; give an http(s):// URL or the path of a local file")
        raise ImageError(
            f"{origin} redirects to {url}: {scheme}:// is not supported (every redirect must stay http(s)://); "
            "download the image yourself if you trust it"
        )


def _redirect_handler(origin: str) -> Any:
    """A redirect handler that checks every hop's scheme (before urllib's own, narrower check),
    counts the hops and never reads a redirect's body (which could be endless)."""
    import urllib.parse
    import urllib.request

    class CheckedRedirects(urllib.request.HTTPRedirectHandler):
        hops = 0

        def http_error_302(self, req, fp, code, msg, headers):  # noqa: ANN001, ANN202
            location = headers.get("location") or headers.get("uri")
            if location:
                self.hops += 1
                target = urllib.parse.urljoin(req.full_url, location)
                try:
                    if self.hops > MAX_REDIRECTS:
                        raise ImageError(
                            f"{origin}: more than {MAX_REDIRECTS} redirects (the last to {target}); is it a "
                            "redirect loop? Give the image's final URL"
                        )
                    _check_scheme(target, origin)
                except ImageError:
                    fp.close()
                    raise
                fp.close()  # urllib would read the body to reuse the connection: it opens a new one anyway
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    handler = CheckedRedirects()
    handler.max_redirections = MAX_REDIRECTS + 1  # our own count speaks first, with a clearer message
    handler.max_repeats = MAX_REDIRECTS + 1
    return handler


def _short(text: str, limit: int = 160) -> str:
    """What a server or a library said, on one line and shortened (a status line can be 64 kB)."""
    text = terminal_safe(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def _failure(url: str, error: BaseException, seconds: float, elapsed: float, received: int) -> ImageError:
    """The :class:`ImageError` for any way a fetch can fail below HTTP's status codes: the URL, what
    happened in words, and what to do."""
    import http.client
    import ssl
    import urllib.error
    import urllib.parse

    from .network_failure import OTHER, REFUSED, classify_failure, describe_failure

    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if not isinstance(reason, BaseException):  # URLError("unknown url type") and the like
        return ImageError(f"cannot fetch {url}: {_short(str(reason))}; check the URL")
    if isinstance(reason, TimeoutError):
        return ImageError(
            f"{url}: no complete answer within {seconds:g} s (connecting, headers, redirects and data all count); "
            f"check the URL and the network, or raise {TIMEOUT_ENV}"
        )
    if isinstance(reason, http.client.RemoteDisconnected):
        return ImageError(f"{url}: the server closed the connection without answering; check the URL or try again")
    if isinstance(reason, http.client.IncompleteRead):
        return ImageError(
            f"{url}: the data was cut short or its chunked encoding is malformed (after {received:,} bytes); "
            "try again, or download the image yourself"
        )
    if isinstance(reason, http.client.HTTPException):
        detail = _short(str(reason)) or type(reason).__name__
        return ImageError(
            f"{url}: the server's answer is not valid HTTP ({type(reason).__name__}: {detail}); check the URL"
        )
    if isinstance(reason, ssl.SSLCertVerificationError):
        return ImageError(
            f"{url}: the server's certificate could not be verified ({_short(reason.verify_message or str(reason))}); "
            "check the URL (an https:// address must have a valid certificate)"
        )
    if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return ImageError(f"{url}: the server reset the connection (after {received:,} bytes); try again")
    kind = classify_failure(reason)
    if isinstance(reason, OSError) and kind != OTHER:  # DNS, refused, no route, TLS
        host = urllib.parse.urlsplit(url).hostname or url
        what = describe_failure(reason, host, elapsed, seconds)
        hint = "check the URL" if kind == REFUSED else "check the URL and the network"
        return ImageError(f"cannot fetch {url}: {what}; {hint}")
    return ImageError(
        f"cannot fetch {url}: {type(reason).__name__}: {_short(str(reason))}; check the URL and the network"
    )


def fetch_url(url: str, *, timeout: float | None = None, max_bytes: int | None = None) -> bytes:
    """The bytes of an ``http(s)://`` URL, within ``timeout`` seconds in all and ``max_bytes`` bytes.

    Defaults: ``$ZEROMAMBA_URL_TIMEOUT`` (else :data:`DEFAULT_URL_TIMEOUT`) and
    ``$ZEROMAMBA_URL_MAX_BYTES`` (else :data:`DEFAULT_MAX_BYTES`).

    The time limit is one deadline for the whole fetch: the name lookup, connecting, the TLS
    handshake, the status line, the headers, every redirect hop and the body (each step gets the
    time left; see :mod:`zeromamba.deadline_http`). Redirects are followed, at most
    :data:`MAX_REDIRECTS` of them, each to an ``http(s)://`` URL.

    Raises:
        ImageError: for every way the fetch can fail, naming the URL: another scheme (of the URL or
            of a redirect), too many redirects, an HTTP error status, no complete answer in time, more
            data than allowed, data cut short (fewer bytes than ``Content-Length``), a malformed answer
            (status line, header lines, chunked encoding), a refused or reset connection, an
            unresolvable name, a TLS failure.
    """
    import http.client
    import urllib.error
    import urllib.request

    from .deadline_http import build_opener

    _check_scheme(url)
    seconds = float(timeout) if timeout is not None else _env_number(TIMEOUT_ENV, DEFAULT_URL_TIMEOUT)
    limit = int(max_bytes if max_bytes is not None else _env_number(MAX_BYTES_ENV, DEFAULT_MAX_BYTES))
    start = time.monotonic()
    deadline = start + seconds
    request = urllib.request.Request(url, headers={"User-Agent": f"zeromamba/{__version__}"})
    too_big = (
        f"{url} is larger than the download limit of {limit:,} bytes; download it yourself or raise {MAX_BYTES_ENV}"
    )
    chunks: list[bytes] = []
    total = 0
    try:
        opener = build_opener(deadline, _redirect_handler(url))
        with opener.open(request, timeout=seconds) as response:  # http(s) only: checked above and on every hop
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise ImageError(too_big)
            announced = response.length  # None when chunked or not given
            while chunk := response.read1(1 << 16):  # each read gets the time left before the deadline
                total += len(chunk)
                if total > limit:
                    raise ImageError(too_big)
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunks.append(chunk)
    except ImageError:
        raise
    except urllib.error.HTTPError as e:
        e.close()
        raise ImageError(f"{url}: the server answered HTTP {e.code} {_short(str(e.reason))}; check the URL") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError, socket, ssl, http.client
        raise _failure(url, e, seconds, time.monotonic() - start, total) from None
    if announced is not None and total < announced:
        raise ImageError(
            f"{url}: the server closed the connection after {total:,} of the {announced:,} bytes it announced; "
            "try again, or download the image yourself"
        )
    return b"".join(chunks)


#: the file extensions a folder is searched for (case-insensitive)
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip
_GLOB_CHARS = ("*", "?", "[")


def _folder_images(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def find_images(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """The image files and URLs that ``inputs`` name, in order: a file or URL as it is, a folder as
    the images inside it (recursively, by :data:`IMAGE_EXTENSIONS`, sorted; hidden folders
    skipped), a glob pattern (``photos/**/*.jpg``) as its matches, sorted. A file that does not
    exist is kept, to be reported as unreadable with the others.

    Raises:
        ImageError: a folder that does not exist or holds no image, a pattern matching nothing.
    """
    out: list[str] = []
    for item in inputs:
        name = os.fspath(item)
        if is_url(name):
            out.append(name)
        elif os.path.isdir(name):
            images = _folder_images(name)
            if not images:
                raise ImageError(f"no images in the folder {name} (looked for {', '.join(IMAGE_EXTENSIONS)})")
            out += images
        elif os.path.exists(name):
            out.append(name)
        elif any(c in name for c in _GLOB_CHARS):
            matches = sorted(p for p in glob.glob(name, recursive=True) if os.path.isfile(p))
            if not matches:
                raise ImageError(f"no file matches {name!r}")
            out += matches
        elif name.endswith(("/", os.sep)):
            raise ImageError(f"folder not found: {name} (from {os.getcwd()})")
        else:
            out.append(name)
    return out
