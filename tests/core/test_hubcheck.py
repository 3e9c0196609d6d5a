"""Pretrained weights that cannot be had fail fast and say what to do, through zeromamba and timm
alike: an unpublished zoo variant at once (no request), any other repository within the timeout.
Run against the loopback Hub (tests/fakehub.py) and a loopback server that never answers."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import constants

import zeromamba
from zeromamba import hubcheck, zoo
from zeromamba.errors import ConfigError, ModelNotAvailableError

from ..fakehub import FakeHub
from ..helpers import block_network

TINY = dict(embed_dim=8, depths=(1, 1, 1, 1), semantic_dim=8, fusion_hidden=16, num_imagenet_classes=10)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """``http://127.0.0.1:PORT``: accepts connections and never answers (a Hub that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def tiny_folder(tiny_predictor, tmp_path: Path) -> Path:
    heads = dict(fusion_hidden=16, num_imagenet_classes=10)
    predictor = tiny_predictor([f"c{i}" for i in range(4)], [f"a{i}" for i in range(6)], **heads)
    return Path(predictor.save_pretrained(tmp_path / "tiny"))


def _expect_convert_error(call, variant: str, seconds: float = 2.0) -> str:
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as e:
        call()
    assert time.perf_counter() - start < seconds
    message = str(e.value)
    source = zoo.get_variant(variant).source_file
    assert "not published" in message and f"zeromamba convert {source} --variant {variant}" in message
    return message


def test_an_unpublished_variant_fails_at_once_without_a_request(
    no_network: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the real Hub's address, an empty cache, and any socket connection is an AssertionError
    monkeypatch.setattr(constants, "ENDPOINT", zoo.DEFAULT_ENDPOINT)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(zoo.NAMESPACE_ENV, raising=False)
    _expect_convert_error(lambda: zeromamba.from_pretrained("cub-gzsl"), "cub-gzsl")
    _expect_convert_error(lambda: zeromamba.load_model("sun-czsl"), "sun-czsl")
    _expect_convert_error(lambda: timm.create_model("zeromamba_small.cub_gzsl", pretrained=True), "cub-gzsl")
    _expect_convert_error(lambda: timm.create_model("vmamba_small.in1k", pretrained=True), "vmamba-small")
    # timm's default tag of the architecture is the same variant
    _expect_convert_error(lambda: timm.create_model("zeromamba_small", pretrained=True), "cub-gzsl")
    # building without weights never looks at the Hub
    assert timm.create_model("zeromamba_small.cub_gzsl", **TINY).num_attributes == 312
    # offline too, the reason given is that it is not published (not "go online and load it once")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    message = _expect_convert_error(lambda: zeromamba.from_pretrained("cub-gzsl"), "cub-gzsl")
    assert "HF_HUB_OFFLINE" not in message
    _expect_convert_error(lambda: timm.create_model("zeromamba_small.cub_gzsl", pretrained=True), "cub-gzsl")


def test_an_unpublished_variant_loads_from_the_cache(
    tiny_folder: Path, fakehub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(zoo.NAMESPACE_ENV, raising=False)
    repo = zoo.get_variant("cub-gzsl").repo_id
    fakehub.publish(repo, tiny_folder)
    # on another endpoint (a mirror, HF_ENDPOINT) the flag does not apply: downloaded into the cache
    first = zeromamba.from_pretrained("cub-gzsl")
    assert zoo.get_variant("cub-gzsl").availability() == "cached"
    # back on huggingface.co, where it is known not to exist: the cache, without a single request
    monkeypatch.setattr(constants, "ENDPOINT", zoo.DEFAULT_ENDPOINT)
    fakehub.stop()
    block_network(monkeypatch)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online: it is the flag that spares the request
    again = zeromamba.from_pretrained("cub-gzsl")
    assert again.class_names == first.class_names
    ref = first.model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in again.model.state_dict().items())
    model = timm.create_model("zeromamba_small.cub_gzsl", pretrained=True, num_attributes=6, **TINY)
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())


def test_a_published_variant_downloads(tiny_folder: Path, fakehub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    published = dataclasses.replace(zoo.get_variant("awa2-gzsl"), published=True)
    monkeypatch.setitem(zoo._REGISTRY, "awa2-gzsl", published)
    monkeypatch.delenv(zoo.NAMESPACE_ENV, raising=False)
    fakehub.publish(published.repo_id, tiny_folder)
    assert published.availability() == "hub"
    assert zeromamba.from_pretrained("awa2-gzsl").num_classes == 4
    assert published.availability() == "cached"


def test_a_hub_that_does_not_answer_fails_within_the_timeout(
    silent_server: str, tiny_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(constants, "ENDPOINT", silent_server)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", silent_server + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    for call, budget in (
        (lambda: zeromamba.from_pretrained("someone/model", timeout=1), 4.0),  # the argument
        (lambda: zeromamba.from_pretrained("hf-hub:someone/model"), 4.0),  # the environment variable
    ):
        monkeypatch.setenv(hubcheck.TIMEOUT_ENV, "1")
        start = time.perf_counter()
        with pytest.raises(
            ModelNotAvailableError, match=r"did not answer within the timeout of 1 s .*ZEROMAMBA_HUB_TIMEOUT"
        ):
            call()
        assert time.perf_counter() - start < budget
    # timm's route to a zoo variant that may exist there (another namespace) gets the same limit
    monkeypatch.setenv(zoo.NAMESPACE_ENV, "my-org")
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match="did not answer within the timeout of 1 s") as e:
        timm.create_model("zeromamba_small.cub_gzsl", pretrained=True)
    assert time.perf_counter() - start < 4.0 and "my-org/zeromamba-small-cub-gzsl" in str(e.value)
    assert "zeromamba convert CUB_bestGZSL.pth" in str(e.value)


def _point_hub_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, cache: Path) -> None:
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


def _unreachable(seconds: float, **kwargs: object) -> str:
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as e:
        zeromamba.from_pretrained("someone/some-repo", **kwargs)
    assert time.perf_counter() - start < seconds
    return str(e.value)


def test_a_refused_connection_says_refused_not_timed_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    closed = socket.socket()  # a port on loopback that nothing listens on
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    _point_hub_at(monkeypatch, f"http://127.0.0.1:{port}", tmp_path / "cache")
    message = _unreachable(8.0, timeout=5)
    assert f"127.0.0.1:{port} refused the connection" in message
    assert "after 0." in message or "after 1." in message  # at once, not after the 5 s timeout
    assert "did not answer" not in message and "wait longer" not in message and "5 s" not in message


def test_a_name_that_does_not_resolve_says_dns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # .invalid never resolves (RFC 6761): with or without a network, with or without a name server
    # (then the resolver's own failure, EAI_AGAIN, is a resolution failure too)
    _point_hub_at(monkeypatch, "http://zeromamba-test.invalid", tmp_path / "cache")
    message = _unreachable(30.0, timeout=2)
    assert "the name zeromamba-test.invalid could not be resolved (DNS" in message
    assert "did not answer" not in message and "wait longer" not in message


def test_a_silent_server_says_timed_out_after_the_timeout(
    silent_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _point_hub_at(monkeypatch, silent_server, tmp_path / "cache")
    message = _unreachable(5.0, timeout=1.5)
    host = silent_server.removeprefix("http://")
    assert f"{host} did not answer within the timeout of 1.5 s (waited 1." in message and "wait longer" in message


def test_failures_are_named_from_the_cause_in_the_exception_chain() -> None:
    # what the OS says, wrapped as HTTP clients wrap it (raise ... from ..., or raised while handling)
    def wrapped(cause: BaseException) -> BaseException:
        try:
            try:
                raise cause
            except OSError as inner:
                raise RuntimeError("connection failed") from inner
        except RuntimeError as outer:
            try:
                raise ValueError("the client's own error")
            except ValueError as client:
                assert client.__context__ is outer
                return client

    import errno

    from zeromamba.network_failure import DNS, NO_ROUTE, OTHER, REFUSED, TIMEOUT, classify_failure

    assert classify_failure(wrapped(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))) == DNS
    assert classify_failure(wrapped(socket.gaierror(socket.EAI_AGAIN, "Temporary failure"))) == DNS
    assert classify_failure(wrapped(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))) == REFUSED
    assert classify_failure(wrapped(OSError(errno.ENETUNREACH, "Network is unreachable"))) == NO_ROUTE
    assert classify_failure(wrapped(OSError(errno.EHOSTUNREACH, "No route to host"))) == NO_ROUTE
    assert classify_failure(wrapped(TimeoutError("timed out"))) == TIMEOUT
    assert classify_failure(wrapped(OSError(errno.EACCES, "Permission denied"))) == OTHER
    # a client that kept only the text (no OS error in the chain)
    assert (
        classify_failure(
            RuntimeError("Failed to resolve 'huggingface.co' ([Errno -3] Temporary failure in name resolution)")
        )
        == DNS
    )


def test_timeout_values() -> None:
    assert hubcheck.hub_timeout(2.5) == 2.5
    with pytest.raises(ConfigError, match="positive"):
        hubcheck.hub_timeout(0)


def test_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hubcheck.TIMEOUT_ENV, raising=False)
    assert hubcheck.hub_timeout() == hubcheck.DEFAULT_TIMEOUT
    monkeypatch.setenv(hubcheck.TIMEOUT_ENV, "3")
    assert hubcheck.hub_timeout() == 3.0
    monkeypatch.setenv(hubcheck.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="ZEROMAMBA_HUB_TIMEOUT must be a number"):
        hubcheck.hub_timeout()
