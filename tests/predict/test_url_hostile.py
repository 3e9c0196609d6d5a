"""Hostile web servers (tests/hostile_http.py, raw sockets on 127.0.0.1) against ``fetch_url`` and
the predictor: one deadline covers the whole fetch, and every malformed answer is an ``ImageError``
that names the URL, so a batch that skips unreadable images keeps the others' results."""

from __future__ import annotations

import io
import re
import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from zeromamba.errors import ImageError
from zeromamba.results import ClassificationResult, ImageFailure
from zeromamba.sources import fetch_url

from ..hostile_http import HostileServer


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, size=(40, 40, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()
LIMIT = 0.6  # seconds given to each fetch that must time out
SLACK = 1.5  # how much later than LIMIT it may end on a loaded machine (the bug held calls 40-150 s)


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer(PNG) as s:
        yield s


def _timed_fetch(url: str, timeout: float = 10.0) -> tuple[ImageError, float]:
    start = time.monotonic()
    with pytest.raises(ImageError) as e:
        fetch_url(url, timeout=timeout)
    return e.value, time.monotonic() - start


@pytest.mark.parametrize(
    "path",
    [
        "/dribble-status",  # one byte of the status line every 50 ms: each read is quick, the answer never ends
        "/dribble-headers",  # the same for a header line
        "/slow-redirect?5",  # 0.4 s per hop, 5 hops: each hop within any per-read timeout
    ],
)
def test_one_deadline_covers_the_status_line_headers_and_redirects(server: HostileServer, path: str) -> None:
    url = server.url(path)
    error, elapsed = _timed_fetch(url, timeout=LIMIT)
    assert str(error).startswith(f"{url}: no complete answer within {LIMIT:g} s"), error
    assert elapsed < LIMIT + SLACK


def test_one_deadline_covers_the_tls_handshake(server: HostileServer) -> None:
    error, elapsed = _timed_fetch(server.tls_url, timeout=LIMIT)  # accepts, reads the ClientHello, says nothing
    assert str(error).startswith(f"{server.tls_url}: no complete answer within {LIMIT:g} s"), error
    assert elapsed < LIMIT + SLACK


def test_one_deadline_covers_the_name_lookup(server: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # the system resolver, taking 5 s to look up one name (AI_NUMERICHOST asks for no lookup)
    real = socket.getaddrinfo

    def slow_resolver(host, port, family=0, kind=0, proto=0, flags=0):  # noqa: ANN001, ANN202
        if host != "slow-dns.test" or flags & socket.AI_NUMERICHOST:
            return real(host, port, family, kind, proto, flags)
        time.sleep(5)
        return real("127.0.0.1", port, family, kind, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    url = f"http://slow-dns.test:{server.port}/image.png"
    error, elapsed = _timed_fetch(url, timeout=LIMIT)
    assert str(error).startswith(f"{url}: no complete answer within {LIMIT:g} s"), error
    assert elapsed < LIMIT + SLACK


def test_proxies_are_used_and_their_tunnel_is_under_the_deadline(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("http_proxy", server.url(""))
    monkeypatch.setenv("https_proxy", server.url(""))
    assert fetch_url("http://images.example/cat.png") == PNG  # the proxy answers for any host
    url = "https://images.example/cat.png"  # the proxy agrees to CONNECT a byte at a time
    error, elapsed = _timed_fetch(url, timeout=LIMIT)
    assert str(error).startswith(f"{url}: no complete answer within {LIMIT:g} s"), error
    assert elapsed < LIMIT + SLACK


def test_a_fetch_within_the_deadline_still_works(server: HostileServer) -> None:
    assert fetch_url(server.url("/slow-redirect?2"), timeout=10) == PNG  # 3 slow answers, 1.2 s in all


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/bad-status", r"the server's answer is not valid HTTP \(BadStatusLine: "),
        ("/long-header", r"not valid HTTP \(LineTooLong: got more than 65536 bytes when reading header line\)"),
        ("/many-headers", r"not valid HTTP \(HTTPException: got more than 100 headers\)"),
        ("/bad-chunked", r"the data was cut short or its chunked encoding is malformed \(after 16 bytes\)"),
        ("/truncated", rf"the server closed the connection after {len(PNG) // 2:,} of the {len(PNG):,} bytes"),
        ("/reset", r"the server reset the connection \(after 100 bytes\)"),
        ("/no-answer", r"the server closed the connection without answering"),
    ],
)
def test_a_malformed_answer_is_an_image_error_naming_the_url(server: HostileServer, path: str, message: str) -> None:
    url = server.url(path)
    error, elapsed = _timed_fetch(url)
    assert str(error).startswith(url) and re.search(message, str(error)), str(error)
    assert elapsed < 5


def test_tls_failures_are_image_errors(server: HostileServer) -> None:
    error, _ = _timed_fetch(server.not_tls_url)  # answers a ClientHello in plain text
    assert str(error).startswith(f"cannot fetch {server.not_tls_url}: the secure connection to 127.0.0.1 failed")


def test_a_redirect_body_is_never_read(server: HostileServer) -> None:
    # the 302's chunked body never ends: reading it (as urllib does, to reuse the connection) would
    # fill memory until the deadline; it is closed unread and the image fetched
    start = time.monotonic()
    assert fetch_url(server.url("/redirect-endless-body"), timeout=5) == PNG
    assert time.monotonic() - start < 3


def test_a_batch_that_skips_errors_keeps_the_others(server: HostileServer, tiny_predictor) -> None:  # noqa: ANN001
    predictor = tiny_predictor(["a", "b", "c"], ["x", "y", "z", "w"])
    urls = [server.url(p) for p in ("/image.png", "/bad-status", "/long-header", "/bad-chunked", "/reset")]
    urls.insert(3, server.url("/image.png?again"))
    items = list(predictor.classify_iter(urls, top_k=2, skip_errors=True, batch_size=2))
    assert [item.source for item in items] == urls
    kinds = [type(item) for item in items]
    assert kinds == [ClassificationResult, ImageFailure, ImageFailure, ClassificationResult, ImageFailure, ImageFailure]
    assert items[0].names == items[3].names and items[0].scores == pytest.approx(items[3].scores)
    for item in items:
        if isinstance(item, ImageFailure):
            assert item.reason.startswith(item.source)
