"""``zeromamba app``: the web page (Gradio) for a model, served on this machine."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from ..constants import EXPLAIN_DEFAULT_RULE, EXPLAIN_METHODS
from ..errors import ZeroMambaError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``zeromamba app``."""
    p = subparsers.add_parser(
        "app",
        help="a web page to try a model: upload or draw an image, define classes by their attributes",
        description="Serve a web page (Gradio) for a model: drop or draw an image and see the top classes, "
        "the predicted attributes and heat maps; define new classes by their attribute values or a CSV. "
        'Runs offline. Needs the app extra: pip install "zeromamba[app]".',
    )
    p.add_argument("--model", default="shapes-zsl", help="a zoo name or a model folder (default: shapes-zsl)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--method",
        choices=EXPLAIN_METHODS,
        default=None,
        help=f"the page's default heat-map method (default: {EXPLAIN_DEFAULT_RULE})",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="classify requests served in parallel, each by its own copy of the model (default: one per CPU core, "
        "at most 4)",
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds a request may take, waiting included (default 120)"
    )
    p.add_argument(
        "--queue-size", type=int, default=100, help="requests that may wait; more are refused at once (default 100)"
    )
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="the largest upload, in MB (default 20)")
    p.add_argument(
        "--session-ttl",
        type=float,
        default=1800.0,
        help="seconds a visitor's classes are kept after their last change (default 1800); closing the tab drops them",
    )
    p.add_argument(
        "--max-sessions",
        type=int,
        default=500,
        help="visitors' sessions kept at once; beyond, the oldest go (default 500)",
    )
    p.set_defaults(func=cmd_app)


def cmd_app(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reports
    for name, value in (
        ("--queue-size", args.queue_size),
        ("--max-upload-mb", args.max_upload_mb),
        ("--session-ttl", args.session_ttl),
        ("--max-sessions", args.max_sessions),
    ):
        if not value > 0:
            raise ZeroMambaError(f"{name} must be positive, got {value:g}")
    # uploads go to a folder of this server's own (mode 700), not the /tmp/gradio every user shares;
    # set before Gradio is imported (some of its modules read it then)
    private = None
    if not os.environ.get("GRADIO_TEMP_DIR"):
        private = os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="zeromamba-app-")
    try:
        try:
            import gradio  # noqa: F401
        except ModuleNotFoundError:
            raise ZeroMambaError('zeromamba app needs Gradio: pip install "zeromamba[app]"') from None
        return _serve(args)
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def _serve(args: argparse.Namespace) -> int:
    from ..factory import from_pretrained
    from ..webapp import build_app

    predictor = from_pretrained(args.model, device=args.device)
    app = build_app(
        predictor,
        title=f"zeromamba: {os.path.basename(os.path.normpath(args.model))}",
        method=args.method,
        workers=args.workers,
        timeout=args.timeout,
        queue_size=args.queue_size,
        session_ttl=args.session_ttl,
    )
    pool = app.zeromamba_pool
    print(
        f"zeromamba app: serving {args.model} on http://{args.host}:{args.port} ({pool.workers} workers x "
        f"{pool.threads_per_worker} threads, {pool.timeout:g} s per request, queue of {args.queue_size}, uploads up "
        f"to {args.max_upload_mb:g} MB, classes defined on the page kept {args.session_ttl:g} s, {args.max_sessions} "
        "sessions at most)",
        flush=True,
    )
    app.launch(
        server_name=args.host,
        server_port=args.port,
        ssr_mode=False,
        show_error=True,
        quiet=True,
        max_file_size=int(args.max_upload_mb * 1_000_000),
        state_session_capacity=args.max_sessions,
    )
    return 0
