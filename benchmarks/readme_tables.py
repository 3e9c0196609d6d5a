"""The README's speed tables, printed as Markdown from the benchmarks' JSON (nothing typed by hand).

    python benchmarks/readme_tables.py benchmarks/results/cpu_forward_<date>.json [more.json ...]

Each ``cpu_forward`` JSON gives one table: per case, each model's median milliseconds per forward
pass, every other model's median per-round ratio to resnet101 and vit_small (with the range over the
rounds), and the peak resident memory of a process running one forward pass (in brackets: how
much of it the forward pass itself added over the loaded model). A ``profile_cpu`` JSON gives the time by category.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BASELINES = ("resnet101", "vit_small")


def _memory(row: dict, name: str) -> str:
    mem = row.get("peak_memory", {}).get(name)
    return f"{mem['peak_rss_mib']} (+{mem['forward_mib']})" if isinstance(mem, dict) else "-"


def cpu_forward_table(report: dict) -> str:
    results = report["results"]
    models = list(next(iter(report["times_ms"].values())))
    pairs = [(m, b) for m in models if m not in BASELINES for b in BASELINES if b in models]
    head = ["case"] + [f"{m} ms" for m in models]
    head += [f"{m} / {b} (range)" for m, b in pairs]
    head += [f"peak RSS MiB {m} (+forward)" for m in models]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, row in results.items():
        size, batch, dtype = case.split("_")
        cells = [f"{size} {batch.replace('b', 'batch ')} {dtype}"]
        cells += [f"{row[f'{m}_ms']}" for m in models]
        for m, base in pairs:
            lo, hi = row[f"{m}_vs_{base}_range"]
            ratio = f"{row[f'{m}_vs_{base}']:.2f} ({lo:.2f}-{hi:.2f})"
            cells.append(f"**{ratio}**" if base == "resnet101" else ratio)
        cells += [_memory(row, m) for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_table(report: dict) -> str:
    lines = ["| category | ms | share |", "|---|---|---|"]
    for cat, ms in report["profile_ms"].items():
        lines.append(f"| {cat} | {ms} | {report['profile_share'][cat]:.1%} |")
    return "\n".join(lines)


def main() -> None:
    for path in sys.argv[1:]:
        report = json.loads(Path(path).read_text())
        kind = report.get("benchmark")
        print(f"<!-- from {path} -->")
        if kind == "cpu_forward":
            print(cpu_forward_table(report))
        elif kind == "profile_cpu":
            print(profile_table(report))
        else:
            raise SystemExit(f"{path}: not a cpu_forward or profile_cpu report")
        print()


if __name__ == "__main__":
    main()
