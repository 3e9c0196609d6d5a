"""``zeromamba app`` under load: many visitors pressing Classify at once.

Starts the installed ``zeromamba app`` on 127.0.0.1 on a free port (loopback only; or uses the one
at ``--url``, whose log ``--server-log`` names), then, through
the page's own API (``gradio_client``, as the page's JavaScript does: upload the file, then call
``/classify``):

1. one warm-up request (not counted), then ``--single`` requests one after another: the latency of
   one request alone;
2. ``--requests`` requests sent at once from ``--concurrency`` threads: each one's latency, the
   throughput, and how many failed or got something other than zeromamba's page;
3. with ``--bad-uploads``: a file that is not an image, a truncated JPEG and a decompression bomb
   (8000 x 8000 pixels in a 13 kB PNG): the error text each one gets;

and reports whether the server log holds a Python traceback. Every request has a time limit
(``--request-timeout``) and the whole run one too (``--deadline``). Prints JSON; the criterion is
``median latency <= 3 x single latency x requests per worker``.

    python benchmarks/app_load.py --out benchmarks/results/app_load.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import machine_info

MARK = "## "  # zeromamba's headline: a Markdown heading naming the class


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model: str, workers: int | None, log: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """``zeromamba app`` on 127.0.0.1; returns the process and its URL once the page answers."""
    import urllib.request

    port = free_port()
    command = [str(Path(sys.executable).with_name("zeromamba")), "app", "--model", model, "--port", str(port)]
    command += (["--workers", str(workers)] if workers else []) + extra
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"zeromamba app exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit(f"zeromamba app did not serve its page within 300 s:\n{log.read_text()}")


def make_images(folder: Path) -> dict[str, Path]:
    """A good drawing of the shapes model's world, and three bad uploads."""
    import numpy as np
    from PIL import Image

    from zeromamba.data.shapes import render_shape

    files = {"good": folder / "red_striped_bar.png"}
    render_shape("red", "striped", "bar", np.random.default_rng(5)).save(files["good"])
    files["not_an_image"] = folder / "notes.png"
    files["not_an_image"].write_text("these are my notes, not a picture\n")
    jpeg = folder / "photo.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(jpeg, quality=90)
    files["truncated_jpeg"] = folder / "truncated.jpg"
    files["truncated_jpeg"].write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    files["decompression_bomb"] = folder / "bomb.png"
    Image.new("1", (8000, 8000)).save(files["decompression_bomb"], optimize=True)
    return files


def classify(client: Any, path: Path, method: str | None, timeout: float) -> dict[str, Any]:
    """One classify request: its latency, and what came back (the headline, or the error text)."""
    from gradio_client import handle_file

    t0 = time.perf_counter()
    job = client.submit(handle_file(str(path)), None, method, api_name="/classify")
    try:
        headline = job.result(timeout=timeout)[0]
        outcome = {"ok": str(headline).startswith(MARK), "headline": str(headline).split("\n")[0]}
    except Exception as e:  # noqa: BLE001 - counted as a failure, with its text
        outcome = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    outcome["latency_s"] = time.perf_counter() - t0
    return outcome


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-zsl")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight at once (client threads)")
    parser.add_argument("--workers", type=int, default=None, help="the app's --workers (default: its own)")
    parser.add_argument("--method", default=None, help="heat-map method (default: the page's)")
    parser.add_argument("--single", type=int, default=3, help="sequential requests timing one request alone")
    parser.add_argument("--bad-uploads", action="store_true", help="also send three bad uploads")
    parser.add_argument("--request-timeout", type=float, default=600.0)
    parser.add_argument("--deadline", type=float, default=1200.0, help="seconds for the whole run")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--url", help="a zeromamba app already serving on 127.0.0.1 (default: start one)")
    parser.add_argument("--server-log", help="with --url: that server's log, searched for tracebacks")
    args = parser.parse_args()
    if not 1 <= args.requests <= 500 or not 1 <= args.concurrency <= 100:
        parser.error("bounded: --requests 1..500, --concurrency 1..100")
    started = time.monotonic()
    load_before = os.getloadavg()

    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = make_images(folder)
        if args.url:
            proc, url, log = None, args.url, Path(args.server_log) if args.server_log else None
        else:
            log = folder / "server.log"
            proc, url = start_app(args.model, args.workers, log, [])
        try:
            client = Client(url, verbose=False, max_workers=args.concurrency + 2)
            classify(client, files["good"], args.method, args.request_timeout)  # warm-up
            single = [classify(client, files["good"], args.method, args.request_timeout) for _ in range(args.single)]
            remaining = max(1.0, args.deadline - (time.monotonic() - started))
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                futures = [
                    pool.submit(classify, client, files["good"], args.method, min(args.request_timeout, remaining))
                    for _ in range(args.requests)
                ]
                loaded = [f.result() for f in futures]
            wall = time.perf_counter() - t0
            bad = {}
            if args.bad_uploads:
                for kind in ("not_an_image", "truncated_jpeg", "decompression_bomb"):
                    got = classify(client, files[kind], args.method, args.request_timeout)
                    bad[kind] = {"file": files[kind].name, "error": got.get("error"), "latency_s": got["latency_s"]}
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        server_log = log.read_text(errors="replace") if log is not None else ""
    banner = re.search(r"\((\d+) workers x (\d+) threads", server_log)
    workers = int(banner.group(1)) if banner else args.workers
    latencies = [r["latency_s"] for r in loaded]
    single_s = statistics.median(r["latency_s"] for r in single)
    per_worker = args.requests / workers if workers else float("nan")
    bound = 3 * single_s * per_worker
    result = {
        "benchmark": "app_load",
        "machine": machine_info(),
        "model": args.model,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "workers": workers,
        "threads_per_worker": int(banner.group(2)) if banner else None,
        "single_request_s": round(single_s, 3),
        "single_requests_s": [round(r["latency_s"], 3) for r in single],
        "single_ok": all(r["ok"] for r in single),
        "wall_s": round(wall, 2),
        "throughput_per_s": round(args.requests / wall, 3),
        "latency_s": {
            "p50": round(statistics.median(latencies), 2),
            "p90": round(percentile(latencies, 90), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(max(latencies), 2),
        },
        "failures": sum(not r["ok"] for r in loaded),
        "failure_texts": sorted({r.get("error") or r.get("headline", "") for r in loaded if not r["ok"]})[:5],
        "headlines": sorted({r.get("headline", "") for r in loaded if r["ok"]}),
        "median_bound_s": round(bound, 2),
        "median_within_bound": statistics.median(latencies) <= bound,
        "bad_uploads": bad,
        "tracebacks_in_server_log": server_log.count("Traceback"),
        "server_log_tail": server_log[-1500:] if "Traceback" in server_log else "",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
