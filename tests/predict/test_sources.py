"""``http(s)://`` images, fetched with a timeout and a size limit, against a loopback HTTP server."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from zeromamba.errors import ImageError
from zeromamba.images import load_image
from zeromamba.sources import MAX_REDIRECTS, fetch_url, is_url


def _png() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size=(24, 30, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/image.png":
            self._send(PNG)
        elif self.path == "/big-declared.png":  # says how big it is: refused before reading
            self.send_response(200)
            self.send_header("Content-Length", str(10_000_000))
            self.end_headers()
        elif self.path == "/big-undeclared.png":  # no Content-Length: refused while reading
            self.send_response(200)
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"x" * 65536)
        elif self.path == "/slow.png":  # trickles bytes, each within the socket timeout
            self.send_response(200)
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            for i in range(0, len(PNG), 16):
                self.wfile.write(PNG[i : i + 16])
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path == "/not-an-image.png":
            self._send(b"<html>hello</html>")
        elif self.path.startswith("/redirect-to?"):  # a 302 to the URL after "?", absolute or relative
            self.send_response(302)
            self.send_header("Location", self.path.split("?", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/hop/"):  # /hop/N redirects to /hop/N-1 ... /hop/0 is the image
            n = int(self.path.rsplit("/", 1)[1])
            if n == 0:
                self._send(PNG)
            else:
                self.send_response(301 if n % 2 else 307)
                self.send_header("Location", f"/hop/{n - 1}")
                self.send_header("Content-Length", "0")
                self.end_headers()
        elif self.path == "/loop":  # redirects to itself forever
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_an_image_url_loads_like_the_file(server: str, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "image.png"
    path.write_bytes(PNG)
    from_url = load_image(f"{server}/image.png")
    assert np.array_equal(np.asarray(from_url), np.asarray(load_image(path)))
    assert is_url(f"{server}/image.png") and not is_url(str(path))


def test_url_failures_say_what_happened(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImageError, match="HTTP 404"):
        load_image(f"{server}/missing.png")
    with pytest.raises(ImageError, match="larger than the download limit of 1,000,000 bytes"):
        fetch_url(f"{server}/big-declared.png", max_bytes=1_000_000)
    monkeypatch.setenv("ZEROMAMBA_URL_MAX_BYTES", "1000000")
    with pytest.raises(ImageError, match="larger than the download limit"):
        load_image(f"{server}/big-undeclared.png")
    start = time.perf_counter()
    with pytest.raises(ImageError, match="no complete answer within 1 s"):
        fetch_url(f"{server}/slow.png", timeout=1)
    assert time.perf_counter() - start < 3
    with pytest.raises(ImageError, match="not an image PIL can read"):
        load_image(f"{server}/not-an-image.png")
    with pytest.raises(ImageError, match="file:// is not supported"):
        load_image("file:///etc/hostname")
    with pytest.raises(ImageError, match="cannot fetch"):
        load_image("http://127.0.0.1:9/nothing-listens.png")  # connection refused


def test_every_redirect_hop_must_be_http(server: str) -> None:
    # a 302 to ftp:// (which urllib would follow) and to file:// are refused, naming both URLs
    for target in ("ftp://127.0.0.1:9/image.png", "file:///etc/hostname"):
        scheme = target.split(":", 1)[0]
        with pytest.raises(ImageError) as e:
            fetch_url(f"{server}/redirect-to?{target}")
        assert str(e.value) == (
            f"{server}/redirect-to?{target} redirects to {target}: {scheme}:// is not supported (every redirect "
            "must stay http(s)://); download the image yourself if you trust it"
        )
    # http(s) hops are followed: relative ones, 301 and 307, up to MAX_REDIRECTS of them
    assert fetch_url(f"{server}/redirect-to?/image.png") == PNG
    assert fetch_url(f"{server}/hop/{MAX_REDIRECTS}") == PNG
    assert np.array_equal(np.asarray(load_image(f"{server}/hop/2")), np.asarray(Image.open(io.BytesIO(PNG))))


def test_redirects_are_bounded(server: str) -> None:
    with pytest.raises(
        ImageError, match=rf"/hop/{MAX_REDIRECTS + 1}: more than {MAX_REDIRECTS} redirects \(the last to"
    ):
        fetch_url(f"{server}/hop/{MAX_REDIRECTS + 1}")
    start = time.perf_counter()
    with pytest.raises(ImageError) as e:
        load_image(f"{server}/loop")
    assert str(e.value) == (
        f"{server}/loop: more than {MAX_REDIRECTS} redirects (the last to {server}/loop); is it a redirect loop? "
        "Give the image's final URL"
    )
    assert time.perf_counter() - start < 10
