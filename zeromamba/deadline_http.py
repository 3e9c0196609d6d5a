"""urllib under one deadline: every step of a fetch gets only the time left before it.

A socket timeout bounds one blocking call, not a fetch: a server that sends one header byte every
few seconds, or redirects slowly several times, keeps each call under the timeout and the fetch
going for minutes. Here every step gets the seconds left before a single deadline, recomputed
before it starts: the name lookup (in a helper thread: the system resolver has no timeout of its
own), the TCP connect, a proxy's ``CONNECT``, the TLS handshake, sending the request, and each
read of the status line, the headers and the body, on every redirect hop. Past the deadline a
step raises :class:`TimeoutError` at once.

:func:`build_opener` is urllib's ``build_opener`` with these HTTP and HTTPS handlers in place of
the standard ones (proxies from the environment still apply). A leaf: the standard library only.
"""

from __future__ import annotations

import functools
import http.client
import io
import socket
import threading
import time
import urllib.request
from typing import Any

__all__ = ["build_opener", "time_left"]


def time_left(deadline: float) -> float:
    """Seconds until ``deadline`` (a :func:`time.monotonic` time); :class:`TimeoutError` when none are left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the time limit was reached")
    return left


def _arm(sock: socket.socket, deadline: float) -> None:
    sock.settimeout(time_left(deadline))


def _resolve(host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` within the deadline. A numeric address needs no lookup; a name is looked up
    in a daemon thread, abandoned (it ends when the resolver gives up) when the deadline passes."""
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        pass
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome["found"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = e
        finally:
            done.set()

    threading.Thread(target=lookup, name="zeromamba-resolve", daemon=True).start()
    if not done.wait(time_left(deadline)):
        raise TimeoutError(f"no address for {host} within the time limit")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["found"]


def _open_socket(
    address: tuple[str, int], timeout: Any = None, source_address: Any = None, *, deadline: float
) -> socket.socket:
    """``socket.create_connection`` with the deadline in place of ``timeout``."""
    host, port = address
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            if source_address:
                sock.bind(source_address)
            _arm(sock, deadline)
            sock.connect(sockaddr)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as e:
            sock.close()
            last = e
    raise last or OSError(f"no address found for {host}")


class _DeadlineReader(io.RawIOBase):
    """A socket's raw reader whose every read gets the time left before the deadline."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: float):
        super().__init__()
        self._raw, self._sock, self._deadline = raw, sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        _arm(self._sock, self._deadline)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """The status line, headers and body read under the deadline."""

    def __init__(self, sock: socket.socket, *args: Any, deadline: float, **kwargs: Any):
        super().__init__(sock, *args, **kwargs)
        raw = self.fp.detach()  # the socket's own reader, kept open
        self.fp = io.BufferedReader(_DeadlineReader(raw, sock, deadline))


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, deadline: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._deadline = deadline
        self._create_connection = functools.partial(_open_socket, deadline=deadline)
        self.response_class = functools.partial(_DeadlineResponse, deadline=deadline)  # type: ignore[assignment]

    def send(self, data: Any) -> None:
        if self.sock is None and self.auto_open:
            self.connect()
        if self.sock is not None:
            _arm(self.sock, self._deadline)
        super().send(data)


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: float):
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_DeadlineHTTPConnection, deadline=self._deadline), req)


_handlers: list[Any] = [_DeadlineHTTPHandler]

if hasattr(http.client, "HTTPSConnection"):  # Python built with ssl

    class _DeadlineHTTPSConnection(_DeadlineHTTPConnection, http.client.HTTPSConnection):
        def connect(self) -> None:
            http.client.HTTPConnection.connect(self)  # TCP, and a proxy's CONNECT, under the deadline
            hostname = self._tunnel_host or self.host
            self.sock = self._context.wrap_socket(self.sock, server_hostname=hostname, do_handshake_on_connect=False)
            _arm(self.sock, self._deadline)  # the whole handshake: ssl counts one timeout for it
            self.sock.do_handshake()

    class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
        def __init__(self, deadline: float):
            super().__init__()
            self._deadline = deadline

        def https_open(self, req: urllib.request.Request) -> Any:
            connection = functools.partial(_DeadlineHTTPSConnection, deadline=self._deadline)
            return self.do_open(connection, req, context=self._context)

    _handlers.append(_DeadlineHTTPSHandler)


def build_opener(deadline: float, *handlers: Any) -> urllib.request.OpenerDirector:
    """``urllib.request.build_opener(*handlers)`` whose HTTP and HTTPS connections (a proxy's too)
    finish every step by ``deadline`` (a :func:`time.monotonic` time) or raise :class:`TimeoutError`."""
    return urllib.request.build_opener(*(h(deadline) for h in _handlers), *handlers)
