"""``zeromamba app``: the web page (Gradio) for a model, served on this machine."""

from __future__ import annotations

import argparse
import os

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
    p.set_defaults(func=cmd_app)


def cmd_app(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reports
    try:
        import gradio  # noqa: F401
    except ModuleNotFoundError:
        raise ZeroMambaError('zeromamba app needs Gradio: pip install "zeromamba[app]"') from None
    from ..factory import from_pretrained
    from ..webapp import build_app

    for name, value in (("--queue-size", args.queue_size), ("--max-upload-mb", args.max_upload_mb)):
        if not value > 0:
            raise ZeroMambaError(f"{name} must be positive, got {value:g}")
    predictor = from_pretrained(args.model, device=args.device)
    app = build_app(
        predictor,
        title=f"zeromamba: {os.path.basename(os.path.normpath(args.model))}",
        method=args.method,
        workers=args.workers,
        timeout=args.timeout,
        queue_size=args.queue_size,
    )
    pool = app.zeromamba_pool
    print(
        f"zeromamba app: serving {args.model} on http://{args.host}:{args.port} ({pool.workers} workers x "
        f"{pool.threads_per_worker} threads, {pool.timeout:g} s per request, queue of {args.queue_size}, uploads up "
        f"to {args.max_upload_mb:g} MB)",
        flush=True,
    )
    app.launch(
        server_name=args.host,
        server_port=args.port,
        ssr_mode=False,
        show_error=True,
        quiet=True,
        max_file_size=int(args.max_upload_mb * 1_000_000),
    )
    return 0
