"""A hostile web server on 127.0.0.1, written on raw sockets so that it can answer what no HTTP
library would send: a status line or headers dribbled a byte at a time, slow redirects, a malformed
status line, a 70 kB header line, 200 headers, broken chunked encoding, a body shorter than its
``Content-Length``, a reset connection, a redirect whose body never ends, a TLS port that never
finishes its handshake and one that answers in plain text. Each path of :data:`BEHAVIOURS` is one
of them; ``/image.png`` serves :attr:`HostileServer.image`. As a proxy, it answers any absolute
URL with the image, and a ``CONNECT`` slowly.

A dribbling answer stops after :data:`MAX_DRIBBLE_SECONDS` (so that a client without a deadline
fails its test instead of hanging the run) or when the client hangs up.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable

#: the longest a dribbling answer goes on
MAX_DRIBBLE_SECONDS = 30.0


class HostileServer:
    """``with HostileServer(image_bytes) as server: server.url("/bad-status")``; ``server.tls_url``
    is a port that accepts TCP connections and then says nothing (a TLS handshake that never ends)."""

    def __init__(self, image: bytes):
        self.image = image
        self._stop = threading.Event()
        serves = (self._serve_http, self._serve_silence, self._serve_plain_text)
        self._listeners = [self._listen(serve) for serve in serves]
        self.port, self.tls_port, self.plain_port = (s.getsockname()[1] for s in self._listeners)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}/image.png"

    @property
    def not_tls_url(self) -> str:
        """An https:// URL whose server answers in plain text."""
        return f"https://127.0.0.1:{self.plain_port}/image.png"

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for s in self._listeners:
            s.close()

    # -- plumbing

    def _listen(self, serve: Callable[[socket.socket], None]) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)

        def accept() -> None:
            while not self._stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=self._handle, args=(serve, conn), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return listener

    def _handle(self, serve: Callable[[socket.socket], None], conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            serve(conn)

    def _dribble(self, conn: socket.socket, data: bytes, every: float = 0.05) -> None:
        end = time.monotonic() + MAX_DRIBBLE_SECONDS
        for i in range(len(data)):
            if self._stop.is_set() or time.monotonic() > end:
                return
            conn.sendall(data[i : i + 1])
            time.sleep(every)

    def _serve_silence(self, conn: socket.socket) -> None:
        conn.settimeout(MAX_DRIBBLE_SECONDS)
        with contextlib.suppress(OSError):
            while conn.recv(4096) and not self._stop.is_set():  # reads the ClientHello, answers nothing
                pass

    def _serve_plain_text(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    def _serve_http(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(4096)
            if not data:
                return
            request += data
        method, path = request.split(b"\r\n", 1)[0].decode("ascii").split(" ")[:2]
        if method == "CONNECT":  # as a proxy: agrees to open a tunnel, a byte every 50 ms
            return self._dribble(conn, b"HTTP/1.1 200 Connection established\r\n\r\n")
        if path.startswith("http://"):  # as a proxy: any absolute URL is the image
            return _image(self, conn, "")
        name, _, arg = path.partition("?")
        BEHAVIOURS[name](self, conn, arg)

    def _ok(self, conn: socket.socket, body: bytes, extra: bytes = b"") -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra)
        conn.sendall(head + body)


def _image(s: HostileServer, conn: socket.socket, arg: str) -> None:
    s._ok(conn, s.image)


def _dribble_status(s: HostileServer, conn: socket.socket, arg: str) -> None:
    s._dribble(conn, b"HTTP/1.1 200 OK" + b" " * 10_000 + b"\r\n")


def _dribble_headers(s: HostileServer, conn: socket.socket, arg: str) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    s._dribble(conn, b"X-Slow: " + b"a" * 10_000 + b"\r\n")


def _slow_redirect(s: HostileServer, conn: socket.socket, arg: str) -> None:
    """``/slow-redirect?N``: after 0.4 s, a redirect to ``?N-1``; ``?0`` is the image."""
    hops = int(arg or 0)
    time.sleep(0.4)
    if hops <= 0:
        return _image(s, conn, arg)
    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /slow-redirect?%d\r\nContent-Length: 0\r\n\r\n" % (hops - 1))


def _bad_status(s: HostileServer, conn: socket.socket, arg: str) -> None:
    conn.sendall(b"HTTP/1.1 abc Nonsense\r\nContent-Length: 0\r\n\r\n")


def _long_header(s: HostileServer, conn: socket.socket, arg: str) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n")


def _many_headers(s: HostileServer, conn: socket.socket, arg: str) -> None:
    headers = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(200))
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 0\r\n\r\n")


def _bad_chunked(s: HostileServer, conn: socket.socket, arg: str) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + s.image[:16] + b"\r\nzz\r\n")


def _truncated(s: HostileServer, conn: socket.socket, arg: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(s.image)
    conn.sendall(head + s.image[: len(s.image) // 2])


def _reset(s: HostileServer, conn: socket.socket, arg: str) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(s.image) + s.image[:100])
    time.sleep(0.1)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST


def _no_answer(s: HostileServer, conn: socket.socket, arg: str) -> None:
    pass  # closes at once


def _redirect_endless_body(s: HostileServer, conn: socket.socket, arg: str) -> None:
    """A redirect to the image whose own (chunked) body goes on and on: a client that reads it to
    reuse the connection fills its memory."""
    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /image.png\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (1 << 16, b"x" * (1 << 16))
    end = time.monotonic() + MAX_DRIBBLE_SECONDS
    while not s._stop.is_set() and time.monotonic() < end:
        conn.sendall(chunk)


BEHAVIOURS: dict[str, Callable[[HostileServer, socket.socket, str], None]] = {
    "/image.png": _image,
    "/dribble-status": _dribble_status,
    "/dribble-headers": _dribble_headers,
    "/slow-redirect": _slow_redirect,
    "/bad-status": _bad_status,
    "/long-header": _long_header,
    "/many-headers": _many_headers,
    "/bad-chunked": _bad_chunked,
    "/truncated": _truncated,
    "/reset": _reset,
    "/no-answer": _no_answer,
    "/redirect-endless-body": _redirect_endless_body,
}
