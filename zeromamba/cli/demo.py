"""``zeromamba demo``: the embedded shapes model end to end, offline (see :mod:`zeromamba.demo`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..demo import DEFAULT_DEFINE, DEFAULT_OUT, DEFAULT_SEED, DEMO_MODEL, run_demo
from ..terminal import terminal_safe

__all__ = ["register"]


def _verdict(correct: bool) -> str:
    return "ok" if correct else "WRONG"


def _print_report(r: dict[str, Any]) -> None:
    safe = terminal_safe  # class and attribute names come from the model folder: no control characters
    print(
        f"zeromamba demo: model {safe(repr(r['model']))}"
        f"{' (embedded, offline)' if r['model'] == DEMO_MODEL else ''}, {r['num_classes']} classes "
        f"({r['num_seen']} seen, {r['num_classes'] - r['num_seen']} unseen), "
        f"GZSL calibrated stacking with gamma {r['gamma']:g}\n"
    )
    print("Images of UNSEEN classes (never shown in training):")
    header = ("#", "true class", "prediction", "prob", "")
    table = [header] + [
        (str(i + 1), safe(x["true"]), safe(x["predicted"]), f"{x['probability']:.2f}", _verdict(x["correct"]))
        for i, x in enumerate(r["images"])
    ]
    widths = [max(len(row[c]) for row in table) for c in range(len(header))]
    for k, row in enumerate(table):
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))
    correct = sum(x["correct"] for x in r["images"])
    print(f"  {correct} of {len(r['images'])} correct\n")
    e = r["explained"]
    print(
        f"Explanation of image 1 ({safe(e['true'])}): {e['method']} maps of {safe(', '.join(e['attributes']))}\n"
        f"  written to {safe(r['explanation'])}\n"
    )
    d = r["defined"]
    attrs = safe(" + ".join(d["attributes"]))
    novelty = "a combination never shown in training" if not d["seen_in_training"] else "a training class"
    print(f"A class defined on the spot by its attributes ({attrs}; {novelty}),")
    print(f"added to the {d['candidates'] - 1} seen classes; an image drawn for it is classified as:")
    verdict = "recognised" if d["recognised"] else "NOT recognised"
    print(f"  {safe(d['predicted'])}  (p = {d['probability']:.2f})  -> {verdict}")
    print(f"  runner-up: {safe(', '.join(d['top3'][1:]))}")
    print(f"\ndone in {r['seconds']:.1f} s")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``zeromamba demo``."""
    p = subparsers.add_parser(
        "demo",
        help="zero-shot classification of unseen classes with the embedded shapes model (offline)",
        description="Classify generated images of classes the embedded model never saw in training, write an "
        "explanation PNG, and recognise a class defined on the spot by its attributes. No network, no download.",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the images (default {DEFAULT_SEED})")
    p.add_argument("--n", type=int, default=6, help="how many images of unseen classes (default 6)")
    p.add_argument(
        "--out",
        help=f"explanation PNG (default ./{DEFAULT_OUT}, or the temporary folder when . is not writable)",
    )
    p.add_argument(
        "--define",
        default=DEFAULT_DEFINE,
        help=f"the class to define by its attributes: a colour, a fill and a shape (default {DEFAULT_DEFINE!r})",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    result = run_demo(seed=args.seed, n=args.n, out=args.out, define=args.define)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        _print_report(result)
    return 0
