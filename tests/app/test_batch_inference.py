"""Classifying a collection with real engines, as a user does: a Ray cluster started here on
127.0.0.1 (two CPUs, one module-scoped cluster), ``zeromamba classify --engine ray`` in a subprocess
joining it while one of its actor processes is killed with SIGKILL, a run interrupted with Ctrl-C and
resumed, and the Ray Data and ``datasets`` examples of docs/batch-inference.md as written. Every answer is checked
against the local command's ``--format jsonl`` records.

200 images drawn as the shipped model's training images were, plus one unreadable file.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .batch_support import assert_same_predictions, assert_same_records, draw_collection, require
from .conftest import cli_env, zeromamba_command

pytestmark = pytest.mark.slow  # a Ray cluster, and the command line in subprocesses
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"<!-- batch-example: (\w+)[^>]*-->\s*```python\n(.*?)```", re.S)
COUNT = 200


def readme_example(name: str) -> str:
    examples = dict(EXAMPLE.findall((REPO / "docs" / "batch-inference.md").read_text(encoding="utf-8")))
    return examples[name]


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``photos/`` (the images), ``extra/broken.png`` (unreadable), and the inputs in the order the
    command lists them."""
    root = tmp_path_factory.mktemp("collection")
    photos = draw_collection(root / "photos", COUNT)
    broken = root / "extra" / "broken.png"
    broken.parent.mkdir()
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image after all")
    return {"root": root, "inputs": [str(root / "photos"), str(broken)], "images": [str(p) for p in photos]}


def run_cli(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [zeromamba_command(), *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(home, HF_HUB_OFFLINE="1"),
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def reference(collection: dict, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The local command's records: ``--format jsonl``."""
    out = tmp_path_factory.mktemp("reference") / "local.jsonl"
    done = run_cli(
        "classify", *collection["inputs"], "--model", "shapes-zsl", "--top-k", "3", "--format", "jsonl",
        "--output", out, "--workers", "0", home=out.parent / "hf",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr[-3000:]  # 3: the unreadable file, reported and skipped
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == COUNT + 1 and "error" in records[-1] and records[0]["image"].endswith("img000.png")
    return records


@pytest.fixture(scope="module")
def ray_cluster(collection: dict) -> Iterator[str]:
    """A Ray cluster of one node with two CPUs and a 200 MB object store, listening on 127.0.0.1 only,
    with a token of its own (nothing written to the home folder); this process is its driver, started
    in the collection's folder as a user's session would be (its workers resolve relative paths there).
    Yields its address."""
    require("ray", "pyarrow", "pandas")
    settings = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray's single-machine mode: the node's address is 127.0.0.1, and so are its servers' sockets
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # on a shared machine another job's memory must not make Ray's monitor kill our workers
        "RAY_memory_monitor_refresh_ms": "0",
    }
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)  # before Ray is imported: it reads them then (and the command inherits them)
    import ray

    temp = tempfile.mkdtemp(prefix="zmray", dir="/tmp")  # short: Ray's socket paths have a length limit
    cwd = os.getcwd()
    os.chdir(collection["root"])
    try:
        context = ray.init(
            num_cpus=2,
            object_store_memory=200 * 2**20,
            include_dashboard=False,
            _temp_dir=temp,
            log_to_driver=False,
            configure_logging=False,
        )
        address = context.address_info["gcs_address"]
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        ray.shutdown()
        os.chdir(cwd)
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _alive_classifier_actors() -> list[dict]:
    """The live actors running BatchClassifier, from the cluster's actor table (Ray's GCS state, what
    ``ray.util.state.list_actors`` serves through the dashboard, which the ray[data] install lacks)."""
    import ray._private.state

    return [
        a
        for a in ray._private.state.actors().values()
        if "BatchClassifier" in a["ActorClassName"] and a["State"] == "ALIVE" and a.get("Pid")
    ]


def _wait_for(condition, what: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the command ended ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {timeout} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)


def _read_records(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    from zeromamba.record_table import table_to_records

    return table_to_records(pq.read_table(path))


def test_ray_engine_matches_the_local_records_with_an_actor_killed_mid_run(
    collection: dict, reference: list[dict], ray_cluster: str, tmp_path: Path
) -> None:
    out = tmp_path / "results.parquet"
    parts = tmp_path / ".results.parquet.partial"
    log = tmp_path / "command.log"
    args = [
        "classify", *collection["inputs"], "--model", "shapes-zsl", "--top-k", "3", "--engine", "ray",
        "--ray-address", ray_cluster, "--actors", "2", "--batch-size", "4", "--save-every", "8", "--output", out,
    ]  # fmt: skip
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [zeromamba_command(), *map(str, args)], stdout=f, stderr=subprocess.STDOUT, env=cli_env(tmp_path / "hf")
        )
    try:
        # mid-run: some records are saved (a part), not all
        _wait_for(lambda: any(parts.glob("part-*.parquet")), "a first part", proc, log)
        actors = _alive_classifier_actors()
        assert len(actors) == 2, actors
        victim = actors[0]
        os.kill(victim["Pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        assert proc.wait(timeout=600) == 3, log.read_text()[-4000:]  # 3: the unreadable file
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.with_name(out.name + ".partial").exists() and not parts.exists()
    records = _read_records(out)
    # every input exactly once, in input order, the local command's answers
    assert [r["image"] for r in records] == [r["image"] for r in reference]
    assert_same_records(records, reference)
    import ray._private.state

    restarted = ray._private.state.actors(victim["ActorID"])
    assert restarted["NumRestarts"] >= 1  # Ray restarted the actor it lost (max_restarts), not a new pool
    text = log.read_text()
    assert re.search(rf"{COUNT + 1} images in [\d.]+ s, [\d.]+ images/s: {COUNT} classified, 1 could not be read", text)
    assert f"wrote {COUNT + 1} rows to {out}" in text and time.monotonic() >= killed_at


def test_the_readme_ray_example(collection: dict, reference: list[dict], ray_cluster: str) -> None:
    """Run as written, in the folder holding ``photos/``: the Parquet it writes has the local answers."""
    import pyarrow.parquet as pq

    assert Path.cwd() == collection["root"]
    exec(compile(readme_example("ray"), "docs/batch-inference.md", "exec"), {})  # noqa: S102 - the page's own code
    rows = pq.read_table(collection["root"] / "results").to_pylist()
    want = {Path(r["image"]).name: r for r in reference[:COUNT]}
    assert sorted(Path(r["path"]).name for r in rows) == sorted(want)
    for row in rows:
        record = want[Path(row["path"]).name]
        assert row["class"] == record["predictions"][0]["class"] and row["error"] is None
        assert row["score"] == pytest.approx(record["predictions"][0]["score"], rel=1e-6, abs=1e-6)
        assert row["low_confidence"] == record["low_confidence"] and row["gamma"] == record["gamma"]
        assert_same_predictions(row["predictions"], record["predictions"])


DATASETS_SCRIPT = """
import glob, json, os, sys
import datasets, zeromamba

os.chdir(sys.argv[1])
paths = sorted(glob.glob("photos/*.png"))
# this process runs PyTorch first, as a user's session does: what made forked workers hang
classifier = zeromamba.BatchClassifier("shapes-zsl", top_k=3)
classifier({"path": paths[:4]})
images = datasets.Dataset.from_dict({"image": paths}).cast_column("image", datasets.Image())
alone = images.map(classifier, batched=True, batch_size=16)  # in this process
namespace = {}
exec(compile(open(sys.argv[2]).read(), "docs/batch-inference.md", "exec"), namespace)  # the page's example: num_proc=2
keep = ["class", "score", "error", "low_confidence", "predictions"]
forked = namespace["ds"]
print(json.dumps({"alone": alone.select_columns(keep).to_list(), "forked": forked.select_columns(keep).to_list()}))
"""


def test_the_readme_datasets_example_with_and_without_worker_processes(
    collection: dict, reference: list[dict], tmp_path: Path
) -> None:
    """``datasets.Dataset.map(batched=True)`` with the images as an Image feature, in the process and with
    ``num_proc=2`` after the parent ran the model: the local command's answers, no hang."""
    require("datasets", "pyarrow")
    (tmp_path / "example.py").write_text(readme_example("datasets"))
    script = tmp_path / "check.py"
    script.write_text(DATASETS_SCRIPT)
    env = cli_env(tmp_path / "hf", HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "datasets-cache"))
    done = subprocess.run(
        [sys.executable, str(script), str(collection["root"]), str(tmp_path / "example.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for rows in (results["alone"], results["forked"]):
        assert len(rows) == COUNT
        for row, record in zip(rows, reference):
            assert row["error"] is None and row["class"] == record["predictions"][0]["class"]
            assert row["low_confidence"] == record["low_confidence"]
            assert_same_predictions(row["predictions"], record["predictions"])


@contextmanager
def _gated_image_server(image: Path) -> Iterator[tuple[str, threading.Event]]:
    """A loopback server whose one URL answers with ``image``'s bytes only once the event is set: a run
    that reaches it waits there, so Ctrl-C lands mid-run however fast the machine is."""
    gate = threading.Event()
    data = image.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            gate.wait(300)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{image.name}", gate
    finally:
        gate.set()
        server.shutdown()
        server.server_close()


def test_an_interrupted_run_resumes_where_it_stopped(collection: dict, reference: list[dict], tmp_path: Path) -> None:
    """Ctrl-C keeps what is done; ``--resume`` classifies the rest (a CSV manifest lists the inputs);
    other settings, or no ``--resume``, are refused; the joined file is the local records."""
    require("pyarrow")
    held = 70  # the input served by a URL that answers only after Ctrl-C: the first run stops before it
    with _gated_image_server(Path(reference[held]["image"])) as (url, gate):
        _interrupt_and_resume(reference, held, url, gate, tmp_path)


def _interrupt_and_resume(reference: list[dict], held: int, url: str, gate: threading.Event, tmp_path: Path) -> None:
    want = [dict(r) for r in reference]
    want[held]["image"] = url
    manifest = tmp_path / "list.csv"
    manifest.write_text("path\n" + "".join(f"{r['image']}\n" for r in want))
    out = tmp_path / "results.parquet"
    parts = tmp_path / ".results.parquet.partial"
    log = tmp_path / "first.log"
    args = ["classify", manifest, "--model", "shapes-zsl", "--top-k", "3", "--format", "parquet", "--output", out]
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [zeromamba_command(), *map(str, args), "--save-every", "30", "--batch-size", "6", "--workers", "0"],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=cli_env(tmp_path / "hf", HF_HUB_OFFLINE="1", ZEROMAMBA_URL_TIMEOUT="300"),
            # Ctrl-C as in a terminal: a pytest-xdist worker ignores SIGINT, and its children would inherit that
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        _wait_for(lambda: any(parts.glob("part-*.parquet")), "a first part", proc, log)
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        gate.set()  # let a fetch already under way finish, so the command is not held until the URL deadline
        assert proc.wait(timeout=300) == 130, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and "rerun with --resume" in log.read_text()
    saved = sum(len(_read_records(p)) for p in parts.glob("part-*.parquet"))
    assert 30 <= saved <= held

    home = tmp_path / "hf"
    again = run_cli(*args, home=home)
    assert again.returncode == 1 and "add --resume" in again.stderr and not out.exists()
    other = run_cli(*args, "--resume", "--top-k", "2", home=home)
    assert other.returncode == 1 and "top_k: 3 then, 2 now" in other.stderr and not out.exists()

    resumed = run_cli(*args, "--resume", home=home)
    assert resumed.returncode == 3, resumed.stderr[-3000:]
    assert f"{saved} images done before, {COUNT + 1 - saved} to classify" in resumed.stderr
    assert not parts.exists()
    records = _read_records(out)
    assert [r["image"] for r in records] == [r["image"] for r in want]  # the earlier run did a prefix
    assert_same_records(records, want)
