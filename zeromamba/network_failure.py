"""What went wrong when a server could not be reached, in words: the name did not resolve, the
connection was refused, there is no route to the host, or it timed out.

HTTP clients wrap the operating system's error in their own (httpx in httpcore, requests in
urllib3), differently from version to version; the cause is the :class:`OSError` somewhere in the
chain of ``__cause__`` / ``__context__`` (and urllib3's ``reason``). :func:`classify_failure` walks
that chain and names the first cause it recognises, so the message says what happened instead of
guessing. A leaf: the standard library only.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator

__all__ = ["DNS", "NO_ROUTE", "REFUSED", "TIMEOUT", "TLS", "OTHER", "classify_failure", "describe_failure"]

DNS, REFUSED, NO_ROUTE, TIMEOUT, TLS, OTHER = "dns", "refused", "no-route", "timeout", "tls", "other"

_NO_ROUTE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}
# gaierror's codes that mean "the name has no address" or "no resolver could be asked"
_NAME_WORDS = ("name or service not known", "nodename nor servname", "temporary failure in name resolution",
               "no address associated", "name resolution", "getaddrinfo failed")  # fmt: skip


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception it was raised from or during, each once."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [c for c in (e.__cause__, e.__context__, getattr(e, "reason", None)) if isinstance(c, BaseException)]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]


def classify_failure(error: BaseException) -> str:
    """One of :data:`DNS`, :data:`REFUSED`, :data:`NO_ROUTE`, :data:`TIMEOUT`, :data:`TLS` or
    :data:`OTHER`: the first cause in ``error``'s chain that names what happened."""
    for e in _chain(error):
        if isinstance(e, socket.gaierror):
            return DNS
        if isinstance(e, ConnectionRefusedError):
            return REFUSED
        if isinstance(e, (TimeoutError, socket.timeout)):
            return TIMEOUT
        if isinstance(e, ssl.SSLError):
            return TLS
        if isinstance(e, OSError) and e.errno in _NO_ROUTE_ERRNOS:
            return NO_ROUTE
        if isinstance(e, OSError) and e.errno == errno.ECONNREFUSED:
            return REFUSED
    # no OS error in the chain (a client that keeps only the text): read the messages
    text = " ".join(str(e).lower() for e in _chain(error))
    kind = type(error).__name__.lower()
    if any(w in text for w in _NAME_WORDS) or "nameresolution" in kind:
        return DNS
    if "refused" in text:
        return REFUSED
    if "unreachable" in text or "no route" in text:
        return NO_ROUTE
    if "timeout" in kind or "timed out" in text:
        return TIMEOUT
    return OTHER


def describe_failure(error: BaseException, host: str, elapsed: float, timeout: float) -> str:
    """``"<what happened> after <elapsed> s"``, e.g. ``"the name huggingface.co could not be resolved
    (DNS; no network, or no name server reachable) after 0.0 s"``."""
    kind = classify_failure(error)
    after = f"after {elapsed:.1f} s"
    if kind == DNS:
        return f"the name {host} could not be resolved (DNS: no network, or no name server answers) {after}"
    if kind == REFUSED:
        return f"{host} refused the connection (nothing listens on that port, or a firewall said no) {after}"
    if kind == NO_ROUTE:
        return f"there is no route to {host} (the network or the host is unreachable) {after}"
    if kind == TIMEOUT:
        return f"{host} did not answer within the timeout of {timeout:g} s (waited {elapsed:.1f} s)"
    if kind == TLS:
        return f"the secure connection to {host} failed ({type(error).__name__}: {error}) {after}"
    return f"connecting to {host} failed ({type(error).__name__}: {error}) {after}"
