"""The documentation's figure tables, generated from the benchmarks' JSON (nothing typed by hand).

A Markdown page asks for a table with a pair of marker lines; everything between them is this
script's output (a line naming the JSON file, the CPU, its instruction sets, the compiler, the date
and the load, then the table)::

    <!-- table: speed benchmarks/results/cpu_forward_2026-12-06.json benchmarks/results/profile_cpu_2026-12-06.json -->
    <!-- /table -->

    python benchmarks/tables.py --write                 # README.md and docs/**/*.md, blocks rewritten
    python benchmarks/tables.py --check                 # exit 1, naming each block that differs
    python benchmarks/tables.py --write docs/speed.md   # only these files
    python benchmarks/tables.py --print speed benchmarks/results/cpu_forward_2026-12-06.json

Paths in markers are relative to the repository root. The kinds (``KINDS``) and what they read:

* ``speed``: a ``cpu_forward`` JSON with instruction-set ``builds``, and optionally a
  ``profile_cpu`` JSON of the same builds (the scan's share): ZeroMamba-S against resnet101 per build,
  size and batch;
* ``cpu-forward``: a single-build ``cpu_forward`` JSON: every case and model, ratios, peak memory;
* ``profile``: a single-build ``profile_cpu`` JSON: where the forward pass's time goes;
* ``int8``: an ``int8_cpu`` JSON: int8 against float32 and resnet101 per run (native, AVX2-capped);
* ``scan-kernel``: a ``scan_kernel --isa all`` JSON: each kernel build against its arithmetic bound;
* ``batch-inference``: a ``batch_inference`` JSON: throughput and costs per engine;
* ``app-load``: one or more ``app_load`` JSONs, one row each;
* ``export-speed``: an ``export_speed`` JSON: eager, compiled and ONNX Runtime against resnet101;
* ``startup``: a ``startup`` JSON: whole-process times, this version and a baseline.
* ``allocator``: an ``allocator`` JSON: pass times under each memory allocator, against glibc's.

Where a JSON does not record something (older files lack the CPU model or the compiler) the line
says "not recorded" rather than guess.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from table_kinds import KINDS

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^<!-- table: (?P<kind>[\w-]+) (?P<paths>[^\n]*?) -->\n(?P<body>.*?)^<!-- /table -->$", re.M | re.S)
OPEN = re.compile(r"^<!-- table: .*-->$", re.M)


# --- blocks in Markdown files ---------------------------------------------------------------------


def render(kind: str, paths: list[str], root: Path = REPO) -> str:
    """The body of a ``kind`` block for these JSON files (paths relative to ``root``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown table kind {kind!r}; the kinds are {', '.join(KINDS)}")
    if not paths:
        raise ValueError(f"a {kind} table needs at least one JSON file")
    reports = []
    for path in paths:
        try:
            reports.append(json.loads((root / path).read_text("utf-8")))
        except FileNotFoundError:
            raise ValueError(f"{path} does not exist (paths are relative to the repository root)") from None
    return KINDS[kind](paths, reports)


def _block_text(kind: str, paths: list[str], body: str) -> str:
    return f"<!-- table: {kind} {' '.join(paths)} -->\n\n{body}\n\n<!-- /table -->"


FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)


def rewrite(text: str, where: str, root: Path = REPO) -> tuple[str, list[str]]:
    """``text`` with every block regenerated, and a line for each block that changed (markers
    shown inside fenced code blocks are examples, left alone)."""
    stale: list[str] = []
    fenced = [(m.start(), m.end()) for m in FENCE.finditer(text)]

    def in_code(pos: int) -> bool:
        return any(a <= pos < b for a, b in fenced)

    found = {m.start() for m in BLOCK.finditer(text)}
    for m in OPEN.finditer(text):
        if m.start() not in found and not in_code(m.start()):
            line = text.count("\n", 0, m.start()) + 1
            raise ValueError(f"{where}:{line}: a table marker without its '<!-- /table -->' line")

    def one(m: re.Match[str]) -> str:
        if in_code(m.start()):
            return m.group(0)
        paths = m["paths"].split()
        line = text.count("\n", 0, m.start()) + 1
        try:
            new = _block_text(m["kind"], paths, render(m["kind"], paths, root))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{where}:{line}: {m['kind']} table: {type(e).__name__}: {e}") from None
        if new != m.group(0):
            stale.append(f"{where}:{line}: the {m['kind']} table from {' '.join(paths)} differs from the JSON")
        return new

    return BLOCK.sub(one, text), stale


def default_files(root: Path = REPO) -> list[Path]:
    return [p for p in [root / "README.md", *sorted((root / "docs").rglob("*.md"))] if p.is_file()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the blocks in FILES")
    mode.add_argument("--check", action="store_true", help="exit 1 naming each block that differs")
    mode.add_argument("--print", metavar="KIND", choices=list(KINDS), help="print one block from the JSON FILES")
    ap.add_argument("files", nargs="*", help="Markdown files (default: README.md and docs/**/*.md); JSON with --print")
    ap.add_argument(
        "--root", type=Path, default=REPO, help="what marker paths are relative to (default: the repository)"
    )
    args = ap.parse_args(argv)
    if args.print:
        print(_block_text(args.print, args.files, render(args.print, args.files, args.root)))
        return 0
    files = [Path(f) for f in args.files] or default_files(args.root)
    stale_all = []
    for path in files:
        text = path.read_text("utf-8")
        try:
            new, stale = rewrite(text, str(path), args.root)
        except ValueError as e:
            print(f"tables.py: {e}", file=sys.stderr)
            return 2
        stale_all += stale
        if args.write and new != text:
            path.write_text(new, "utf-8")
            print(f"rewrote {len(stale)} table(s) in {path}")
    if args.check:
        for line in stale_all:
            print(line)
        if stale_all:
            print("run: python benchmarks/tables.py --write", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
