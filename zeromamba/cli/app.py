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
    p.set_defaults(func=cmd_app)


def cmd_app(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reports
    try:
        import gradio  # noqa: F401
    except ModuleNotFoundError:
        raise ZeroMambaError('zeromamba app needs Gradio: pip install "zeromamba[app]"') from None
    from ..factory import from_pretrained
    from ..webapp import build_app

    predictor = from_pretrained(args.model, device=args.device)
    app = build_app(predictor, title=f"zeromamba: {os.path.basename(os.path.normpath(args.model))}", method=args.method)
    print(f"zeromamba app: serving {args.model} on http://{args.host}:{args.port}", flush=True)
    app.launch(server_name=args.host, server_port=args.port, ssr_mode=False, show_error=True, quiet=True)
    return 0
