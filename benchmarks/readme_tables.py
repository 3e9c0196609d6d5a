"""The README's speed tables, printed as Markdown from the benchmarks' JSON (nothing typed by hand).

    python benchmarks/readme_tables.py benchmarks/results/cpu_forward_<date>.json [profile_cpu_<date>.json]

A ``cpu_forward`` JSON with instruction-set builds (``builds``) gives the README's speed table: one
row per build naming the CPU, ZeroMamba-S's and resnet101's milliseconds at 448 batch 1 and the
median per-round ratios (range in brackets) of ZeroMamba-S at batch 1 and 8, Vim-S and
ZeroMamba-Vim-S to resnet101; with a ``profile_cpu`` JSON of the same builds, the scan's share of
the forward pass. An older single-build ``cpu_forward`` JSON gives a table per case and model (with
peak memory); a single-build ``profile_cpu`` JSON the time by category.
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


BUILD_LABELS = {
    "native": "{cpu}, native build",
    "avx2": "AVX2: the same CPU capped at AVX2 (PyTorch, oneDNN, MKL; kernels built for x86-64-v3)",
}
FEATURES = (("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx", "AMX"), ("avx2", "AVX2"))


def _cpu(machine: dict) -> str:
    """The CPU as the README names it: model, the instruction sets that matter, cores."""
    flags = machine.get("isa_flags")
    have = [name for flag, name in FEATURES if isinstance(flags, dict) and flags.get(flag)]
    if "AVX-512" in have:
        have.remove("AVX2")
    where = ", virtual machine" if machine.get("virtualised") else ""
    return f"{machine['cpu_model']} ({', '.join(have) or machine['machine']}{where}), {machine['cpu_count']} cores"


def _ratio(row: dict, model: str) -> str:
    if f"{model}_vs_resnet101" not in row:
        return "-"
    lo, hi = row[f"{model}_vs_resnet101_range"]
    return f"{row[f'{model}_vs_resnet101']:.2f} ({lo:.2f}-{hi:.2f})"


def speed_table(report: dict, profile: dict | None = None) -> str:
    """One row per build of a ``cpu_forward`` report (448, float32), with the scan's share from ``profile``."""
    cpu = _cpu(report["machine"])
    head = [
        "CPU and build",
        "ZeroMamba-S ms (b1)",
        "resnet101 ms (b1)",
        "ZeroMamba-S / resnet101, b1",
        "b8",
        "Vim-S / resnet101, b1",
        "ZeroMamba-Vim-S / resnet101, b1",
        "scan share",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for build, data in report["builds"].items():
        b1 = data["results"].get("448_b1_float32", {})
        b8 = data["results"].get("448_b8_float32", {})
        label = BUILD_LABELS.get(build, build).format(cpu=cpu)
        share = "-"
        if profile is not None and build in profile.get("builds", {}):
            share = f"{profile['builds'][build]['scan_share']:.0%}"
        cells = [label, str(b1.get("zeromamba_small_ms", "-")), str(b1.get("resnet101_ms", "-"))]
        cells += [f"**{_ratio(b1, 'zeromamba_small')}**", _ratio(b8, "zeromamba_small")]
        cells += [_ratio(b1, "vim_small"), _ratio(b1, "zeromamba_vim_small"), share]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_table(report: dict) -> str:
    lines = ["| category | ms | share |", "|---|---|---|"]
    for cat, ms in report["profile_ms"].items():
        lines.append(f"| {cat} | {ms} | {report['profile_share'][cat]:.1%} |")
    return "\n".join(lines)


def main() -> None:
    reports = {path: json.loads(Path(path).read_text()) for path in sys.argv[1:]}
    profiles = [r for r in reports.values() if r.get("benchmark") == "profile_cpu" and "builds" in r]
    for path, report in reports.items():
        kind = report.get("benchmark")
        if kind == "profile_cpu" and "builds" in report:
            continue  # its scan shares go into the speed table
        print(f"<!-- from {path} -->")
        if kind == "cpu_forward" and "builds" in report:
            print(speed_table(report, profiles[0] if profiles else None))
        elif kind == "cpu_forward":
            print(cpu_forward_table(report))
        elif kind == "profile_cpu":
            print(profile_table(report))
        else:
            raise SystemExit(f"{path}: not a cpu_forward or profile_cpu report")
        print()


if __name__ == "__main__":
    main()
