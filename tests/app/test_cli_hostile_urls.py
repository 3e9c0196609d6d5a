"""``zeromamba classify`` on URLs served by a hostile server (tests/hostile_http.py): the installed
command skips each unreadable URL with one line naming it, classifies the others, writes their
results to ``--output`` and exits 3, within the URL deadline."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from PIL import Image

from ..hostile_http import HostileServer


def _png(colour: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (80, 80), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_classify_skips_hostile_urls_and_keeps_the_others(cli, tmp_path: Path) -> None:  # noqa: ANN001
    local = tmp_path / "local.png"
    local.write_bytes(_png("white"))
    out = tmp_path / "results.jsonl"
    bad = ["/bad-status", "/long-header", "/many-headers", "/bad-chunked", "/truncated", "/reset", "/no-answer"]
    slow = ["/dribble-headers", "/slow-redirect?5"]  # each would hold the command 30 s (the server's limit)
    with HostileServer(_png("red")) as server:
        urls = [server.url("/image.png"), *map(server.url, bad + slow)]
        start = time.monotonic()
        result = cli(
            "classify", *urls, local, "--format", "jsonl", "--output", out, "--workers", "1", "--batch-size", "3",
            timeout=120, ZEROMAMBA_URL_TIMEOUT="1",
        )  # fmt: skip
        elapsed = time.monotonic() - start
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"] for r in records] == [*urls, str(local)]
    for r in records[1:-1]:  # each failure is a record naming its URL, and a line on stderr
        assert r["error"].startswith(r["image"]) and "predictions" not in r
        assert f"zeromamba: skipped {r['image']}: {r['error']}" in result.stderr.splitlines()
    for r in (records[0], records[-1]):
        assert len(r["predictions"]) == 5 and "error" not in r
    assert records[0]["predictions"][0]["class"].startswith("red")
    assert f"{len(bad) + len(slow)} of {len(urls) + 1} images could not be read" in result.stderr
    assert elapsed < 60  # the two slow URLs cost 1 s each; the rest is the command's start
