"""``zeromamba app`` with several visitors at once and bad uploads (issue 21), as a visitor meets it:
the installed command serves the page on 127.0.0.1, ``benchmarks/app_load.py`` sends 8 classify
requests at once through the page's API (``gradio_client``) and then three bad uploads. Every
request must get zeromamba's page, every bad upload zeromamba's own ImageError text, and the server
log no traceback. The figures of the full run (50 requests) are in the README, not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "app_load.py"


def test_concurrent_requests_and_bad_uploads(tmp_path: Path) -> None:
    pytest.importorskip("gradio_client", reason="needs the app extra (gradio)")
    out = tmp_path / "load.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--requests", "8", "--concurrency", "8", "--single", "1", "--workers", "2"]
        + ["--method", "gradient", "--bad-uploads", "--request-timeout", "300", "--deadline", "500", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["workers"] == 2 and result["requests"] == 8
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
