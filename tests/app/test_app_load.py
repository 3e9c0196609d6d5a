"""``zeromamba app`` as its visitors and hostile clients meet it: one installed server on 127.0.0.1
for the whole module, spoken to through its own API (``gradio_client``, as the page's JavaScript
does) and raw HTTP.

* Load: ``benchmarks/app_load.py`` sends 8 classify requests at once and three bad uploads; every
  request gets zeromamba's page, every bad upload zeromamba's own ImageError text, the server log
  no traceback. The figures of the full run (50 requests) are in docs/web-page.md, not asserted here.
* Not a proxy: payloads naming a URL (with or without a path) or a file elsewhere on the server are
  refused with the page's message, and a listener on loopback sees no connection.
* Every route through the queue: the REST routes that would skip it answer 404, and a burst beyond
  the queue is refused.
* Bounded classes: class files over the page's size are refused before they are read (four at
  once do not grow the server), more classes than the page keeps are refused, names are unique, and
  a session's classes are gone after its time-to-live.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import AppServer, running_app

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "app_load.py"
WORKERS, QUEUE, TTL = 2, 8, 20.0
META = {"_type": "gradio.FileData"}
NOT_A_PROXY = "the page reads only files uploaded to it or drawn on it: it does not fetch URLs or open files"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    pytest.importorskip("gradio_client", reason="needs the app extra (gradio)")
    folder = tmp_path_factory.mktemp("app")
    args = ["--workers", str(WORKERS), "--queue-size", str(QUEUE), "--session-ttl", f"{TTL:g}"]
    with running_app(folder, *args) as app:
        yield app


def _client(server: AppServer) -> Any:
    from gradio_client import Client

    return Client(server.url, verbose=False)


def _defined(table: Any) -> list[str]:
    """The class names of the page's "classes defined here" table, as the API returns it."""
    rows = table["data"] if isinstance(table, dict) else table
    return [row[0] for row in rows or []]


@pytest.fixture(scope="module")
def early_session(server: AppServer) -> tuple[Any, float]:
    """A visitor who defined a class when the module started (its time-to-live runs meanwhile)."""
    client = _client(server)
    table = client.predict("early class", ["red", "circle"], api_name="/add_class")
    assert _defined(table) == ["early class"]
    return client, time.monotonic()


def test_concurrent_requests_and_bad_uploads(server: AppServer, early_session, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--requests", "8", "--concurrency", "8", "--single", "1", "--method", "gradient"]
        + ["--bad-uploads", "--request-timeout", "300", "--deadline", "500", "--out", str(out)]
        + ["--url", server.url, "--server-log", str(server.log)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["workers"] == WORKERS and result["requests"] == 8
    assert result["failures"] == 0, result["failure_texts"]
    assert result["single_ok"] and len(result["headlines"]) == 1 and result["headlines"][0].startswith("## ")
    bad = result["bad_uploads"]
    assert bad["not_an_image"]["error"] == "AppError: notes.png is not an image PIL can read; convert it to JPEG or PNG"
    assert bad["truncated_jpeg"]["error"].startswith(
        "AppError: truncated.jpg is truncated or corrupt (OSError: image file is truncated"
    )
    assert bad["decompression_bomb"]["error"].startswith(
        "AppError: bomb.png has 8000 x 8000 = 64,000,000 pixels, over the pixel limit of 40,000,000"
    )
    assert result["tracebacks_in_server_log"] == 0, result["server_log_tail"]


# --- raw HTTP, as a hostile client speaks to the server ------------------------------------------


def _post(url: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _call(server: AppServer, api: str, data: list) -> tuple[str, Any]:
    """One call through the queue (``/gradio_api/call``): ``("complete", outputs)`` or ``("error", text)``."""
    status, text = _post(f"{server.url}gradio_api/call/{api}", {"data": data})
    if status != 200:
        return "refused", f"{status} {text}"
    event = json.loads(text)["event_id"]
    with urllib.request.urlopen(f"{server.url}gradio_api/call/{api}/{event}", timeout=300) as r:
        stream = r.read().decode()
    kind = "complete" if "event: complete" in stream else "error"
    payload = json.loads(stream.rsplit("data:", 1)[1])
    return kind, payload if kind == "complete" else (payload or {}).get("error") if isinstance(
        payload, dict
    ) else payload


class Listener:
    """A TCP listener on loopback that counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def test_the_page_is_not_a_proxy(server: AppServer, tmp_path: Path) -> None:
    from PIL import Image

    listener = Listener()
    here = f"http://127.0.0.1:{listener.port}"
    picture = tmp_path / "elsewhere.png"  # a real image on the server, but not one it was sent
    Image.new("RGB", (64, 64), "red").save(picture)
    images = {
        "a URL and no path": {"url": f"{here}/a.png", "meta": META},
        "a URL, the path null": {"path": None, "url": f"{here}/b.png", "meta": META},
        "a URL as the path": {"path": f"{here}/c.png", "meta": META},
        "a URL whose name needs DNS": {"path": "http://zeromamba-test.invalid/d.png", "meta": META},
        "a URL and no meta": {"url": f"{here}/e.png"},
        "a file elsewhere on the server": {"path": str(picture)},
        "a system file": {"path": "/etc/hostname"},
    }
    try:
        for what, payload in images.items():
            kind, message = _call(server, "classify", [payload, None, "gradient"])
            assert kind == "error" and message.startswith(NOT_A_PROXY), (what, kind, message)
        drawn = {"background": None, "layers": [], "composite": {"path": f"{here}/s.png", "meta": META}}
        kind, message = _call(server, "classify", [None, drawn, "gradient"])
        assert kind == "error" and message.startswith(NOT_A_PROXY), ("a sketch", kind, message)
        # a class file: Gradio's own checks of a file payload (its meta, its folder) answer first, in its words
        for payload in (
            {"path": "/etc/passwd", "meta": META},
            {"path": "/etc/passwd"},
            {"url": f"{here}/classes.csv", "meta": META},
            {"path": f"{here}/classes.csv", "meta": META},
        ):
            kind, message = _call(server, "add_classes_from_file", [payload])
            assert kind == "error" and "root" not in message, (payload, message)  # nothing of the file is told
        time.sleep(0.5)
        assert listener.connections == 0  # nothing the server was sent made it open a connection
    finally:
        listener.close()


def test_every_route_goes_through_the_queue(server: AppServer, tmp_path: Path) -> None:
    for route in ("run/classify", "api/classify", "run/add_class", "run/add_classes_from_file"):
        status, text = _post(f"{server.url}gradio_api/{route}", {"data": [None, None, "gradient"]})
        assert status == 404 and "join the queue" in text, (route, status, text)
    # a burst beyond the workers and the queue: the rest is refused at once
    from zeromamba.data.shapes import render_shape

    path = tmp_path / "bar.png"
    render_shape("red", "striped", "bar", np.random.default_rng(5)).save(path)
    image = _upload(server, path)
    burst = 3 * (WORKERS + QUEUE)
    with concurrent.futures.ThreadPoolExecutor(burst) as pool:
        outcomes = list(pool.map(lambda _: _call(server, "classify", [image, None, "gradient"]), range(burst)))
    kinds = [k for k, _ in outcomes]
    refused = [m for k, m in outcomes if k != "complete"]
    assert kinds.count("complete") >= WORKERS, outcomes[:3]
    assert len(refused) >= burst // 3, kinds  # 20 of 30 on the 2-core machine
    assert all(m.startswith('503 {"detail":"Queue is full. Max size is 8') for m in refused), refused[:3]


def _upload(server: AppServer, path: Path) -> dict:
    """Upload a file as the page does (``/gradio_api/upload``); the payload that names it."""
    boundary = "zeromamba-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{server.url}gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        stored = json.loads(r.read())[0]
    return {"path": stored, "orig_name": path.name, "meta": META}


def test_classes_on_the_page_are_bounded(server: AppServer, tmp_path: Path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    attributes = ["red", "green", "blue", "yellow", "circle", "triangle", "bar", "solid", "striped", "dotted"]
    # four visitors at once, each uploading a 16.7 MB class CSV: refused before it is read
    big = tmp_path / "big.csv"
    row = ",".join(["1"] * len(attributes))
    lines = ["class," + ",".join(attributes)] + [f"class {i:07d},{row}" for i in range(16_700_000 // 34)]
    big.write_text("\n".join(lines) + "\n")
    assert 16e6 < big.stat().st_size < 17.5e6
    before = server.rss_bytes()

    def upload_big(_: int) -> str:
        try:
            _client(server).predict(handle_file(str(big)), api_name="/add_classes_from_file")
        except AppError as e:
            return str(e)
        return "accepted"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(upload_big, range(4)))
    grown = server.rss_bytes() - before
    assert all(a.startswith("big.csv is 16.7 MB: the page reads class files of at most 2 MB") for a in answers), answers
    assert grown < 150e6, f"the server grew by {grown / 1e6:.0f} MB"
    # too many classes in one file
    many = tmp_path / "many.csv"
    many.write_text(lines[0] + "\n" + "".join(f"c{i},{row}\n" for i in range(501)))
    visitor = _client(server)
    with pytest.raises(AppError, match="501 classes: the page keeps at most 500 classes per visitor"):
        visitor.predict(handle_file(str(many)), api_name="/add_classes_from_file")
    # classes by attribute name, as JSON; names unique among the page's and the model's classes
    named = tmp_path / "named.json"
    named.write_text(
        json.dumps({"my red disc": {"red": 1, "circle": 1, "solid": 1}, "my blue bar": {"blue": 1, "bar": 1}})
    )
    assert _defined(visitor.predict(handle_file(str(named)), api_name="/add_classes_from_file")) == [
        "my red disc",
        "my blue bar",
    ]
    with pytest.raises(AppError, match="'my red disc' is already one of the classes defined on this page"):
        visitor.predict("my red disc", ["green"], api_name="/add_class")
    with pytest.raises(AppError, match="'red solid circle' is already one of the model's classes"):
        visitor.predict("red solid circle", ["green"], api_name="/add_class")
    with pytest.raises(AppError, match=r"unknown attribute\(s\) 'cirlce' \(did you mean 'circle'\?\)"):
        named.write_text(json.dumps({"x": {"red": 1, "cirlce": 1}}))
        visitor.predict(handle_file(str(named)), api_name="/add_classes_from_file")
    assert _defined(visitor.predict(api_name="/remove_classes")) == []


def test_a_sessions_classes_expire(server: AppServer, early_session) -> None:
    client, defined_at = early_session
    time.sleep(max(0.0, defined_at + TTL + 2.5 - time.monotonic()))  # Gradio sweeps expired state every second
    assert _defined(client.predict("late class", ["blue"], api_name="/add_class")) == ["late class"]
