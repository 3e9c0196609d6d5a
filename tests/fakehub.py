"""A small Hub-compatible HTTP server on 127.0.0.1 for the real huggingface_hub client.

:class:`FakeHub` serves model folders the way the Hub's ``resolve`` endpoint does: HEAD/GET
``/{repo_id}/resolve/{revision}/{filename}`` answering with ``X-Repo-Commit``, ``ETag`` and
``Content-Length``, and 404s carrying ``X-Error-Code: RepoNotFound / RevisionNotFound /
EntryNotFound``. It also answers the repository-listing call ``HfApi.model_info`` makes,
GET ``/api/models/{repo_id}[/revision/{revision}]``: JSON with the commit (``sha``) and the files
(``siblings``). The ``fakehub`` fixture (conftest.py) points huggingface_hub's configuration
constants at it; no huggingface_hub function is replaced.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class FakeHub:
    """A minimal Hub ``resolve`` endpoint: repositories of commits of files, served over HTTP."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self._counter = 0
        hubself = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                hubself._serve(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hubself._serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(
        self, repo_id: str, files: dict[str, bytes] | Path, branch: str = "main", commit: str | None = None
    ) -> str:
        """Commit ``files`` (a dict, or every file of a folder) to ``branch``; returns the commit hash
        (``commit`` when given, e.g. a real repository's known commit)."""
        if isinstance(files, Path):
            files = {p.name: p.read_bytes() for p in files.iterdir() if p.is_file()}
        self._counter += 1
        digest = hashlib.sha1(f"{repo_id}:{self._counter}".encode())
        for name in sorted(files):
            digest.update(name.encode() + files[name])
        commit = commit or digest.hexdigest()
        repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
        repo["commits"][commit] = dict(files)
        repo["refs"][branch] = commit
        return commit

    def _serve(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = urlsplit(handler.path).path
        self.requests.append((handler.command, path))
        if path.startswith("/api/models/"):
            return self._model_info(handler, unquote(path[len("/api/models/") :]))
        if "/resolve/" not in path:
            return self._error(handler, 404, "RepoNotFound")
        repo_id, rest = path.lstrip("/").split("/resolve/", 1)
        revision, _, filename = rest.partition("/")
        repo_id, revision, filename = unquote(repo_id), unquote(revision), unquote(filename)
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._error(handler, 404, "RepoNotFound")
        commit = repo["refs"].get(revision, revision if revision in repo["commits"] else None)
        if commit is None:
            return self._error(handler, 404, "RevisionNotFound")
        data = repo["commits"][commit].get(filename)
        if data is None:
            return self._error(handler, 404, "EntryNotFound", commit)
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", commit)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def _model_info(self, handler: BaseHTTPRequestHandler, rest: str) -> None:
        repo_id, _, revision = rest.partition("/revision/")
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._error(handler, 404, "RepoNotFound")
        revision = revision or "main"
        commit = repo["refs"].get(revision, revision if revision in repo["commits"] else None)
        if commit is None:
            return self._error(handler, 404, "RevisionNotFound")
        files = repo["commits"][commit]
        body = json.dumps(
            {"id": repo_id, "sha": commit, "private": False, "siblings": [{"rfilename": n} for n in sorted(files)]}
        ).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _error(handler: BaseHTTPRequestHandler, status: int, code: str, commit: str | None = None) -> None:
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        if commit:
            handler.send_header("X-Repo-Commit", commit)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
