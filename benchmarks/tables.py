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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
NOT_RECORDED = "not recorded"
BLOCK = re.compile(r"^<!-- table: (?P<kind>[\w-]+) (?P<paths>[^\n]*?) -->\n(?P<body>.*?)^<!-- /table -->$", re.M | re.S)
OPEN = re.compile(r"^<!-- table: .*-->$", re.M)
FEATURES = (("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx", "AMX"), ("avx2", "AVX2"))
FEATURES += (("asimd", "NEON"), ("sve", "SVE"))
MODEL_NAMES = {
    "zeromamba_small": "ZeroMamba-S",
    "resnet101": "resnet101",
    "vit_small": "vit_small",
    "vim_small": "Vim-S",
    "zeromamba_vim_small": "ZeroMamba-Vim-S",
    "zeromamba_small_whole_batch": "ZeroMamba-S unsplit",
}


# --- what the JSON says about the machine ------------------------------------------------------


def _flags(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {("amx" if k == "amx_tile" else k) for k, on in value.items() if on}
    if isinstance(value, list):
        return {("amx" if k == "amx_tile" else k) for k in value}
    return set()


def isa_name(flags: Any) -> str:
    """The instruction sets that matter, e.g. ``AVX-512, AVX512-BF16, AMX`` (from a flag dict or list)."""
    have = _flags(flags)
    names = [name for flag, name in FEATURES if flag in have]
    if "AVX-512" in names:
        names.remove("AVX2")
    return ", ".join(names) or NOT_RECORDED


def machine_record(report: dict[str, Any]) -> dict[str, Any]:
    """One shape for the machine records benchmarks have written over time: ``machine_info()``
    under ``machine``, int8_cpu's per-run ``machine``, or top-level ``cpu_model`` / ``isa_flags``."""
    machine = report.get("machine")
    rec = dict(machine) if isinstance(machine, dict) else {}
    for key in ("cpu_model", "isa_flags", "compiler", "date", "cpu_count"):
        if key not in rec and key in report:
            rec[key] = report[key]
    if "cpu_count" not in rec:
        rec["cpu_count"] = report.get("cpus") or report.get("cores") or (machine or {}).get("cpus")
    if "compiler" not in rec and "c_compiler" in rec:
        rec["compiler"] = rec["c_compiler"]
    if not rec.get("isa_flags") or rec.get("isa_flags") == "unknown":
        rec.pop("isa_flags", None)
    return rec


def cpu_text(rec: dict[str, Any], capability: str | None = None) -> str:
    model = rec.get("cpu_model") or f"CPU model {NOT_RECORDED}"
    isa = isa_name(rec["isa_flags"]) if "isa_flags" in rec else None
    if isa is None and capability:
        isa = f"PyTorch CPU capability {capability}"
    parts = [f"ISA {isa or NOT_RECORDED}"]
    if rec.get("virtualised"):
        parts.append("virtual machine")
    if rec.get("cpu_count"):
        parts.append(f"{rec['cpu_count']} cores")
    return f"{model} ({'; '.join(parts)})"


def compiler_text(rec: dict[str, Any]) -> str:
    cc = rec.get("compiler")
    if isinstance(cc, dict):
        cc = cc.get("version") or cc.get("command")
    return f"compiler {cc or NOT_RECORDED}"


def date_text(report: dict[str, Any], rec: dict[str, Any] | None = None) -> str:
    date = report.get("date") or (rec or {}).get("date")
    return f"date {str(date)[:10] if date else NOT_RECORDED}"


def _load(value: Any) -> str:
    return f"{value[0]:.1f}" if isinstance(value, list) and value else "?"


def load_text(report: dict[str, Any]) -> str:
    before = report.get("load_average_before", report.get("loadavg_before"))
    after = report.get("load_average_after", report.get("loadavg_after"))
    if before is None and after is None:
        return f"load average {NOT_RECORDED}"
    return f"load average {_load(before)} before, {_load(after)} after"


def source_line(paths: list[str], *facts: str) -> str:
    files = ", ".join(f"`{p}`" for p in paths)
    return f"*From {files}: {'; '.join(facts)}.*"


# --- small formatting helpers --------------------------------------------------------------------


def table(head: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(row: dict[str, Any], key: str, bold: bool = False) -> str:
    if key not in row:
        return "-"
    text = f"{row[key]:.2f}"
    if f"{key}_range" in row:
        lo, hi = row[f"{key}_range"]
        text += f" ({lo:.2f}-{hi:.2f})"
    return f"**{text}**" if bold else text


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value}"


def _case(key: str) -> tuple[int, int, str]:
    size, batch, *dtype = key.split("_")
    return int(size), int(batch.lstrip("b")), (dtype[0] if dtype else "float32")


# --- the kinds ------------------------------------------------------------------------------------


def _build_isa(report: dict[str, Any], name: str, data: dict[str, Any]) -> str:
    env = data.get("environment") or {}
    if env.get("ATEN_CPU_CAPABILITY") or env.get("ONEDNN_MAX_CPU_ISA"):
        capped = env.get("ATEN_CPU_CAPABILITY") or env.get("ONEDNN_MAX_CPU_ISA")
        return f"{name}: {capped.upper()}-capped"
    rec = machine_record(data) if isinstance(data.get("machine"), dict) else machine_record(report)
    return f"{name}: {isa_name(rec['isa_flags']) if 'isa_flags' in rec else data.get('cpu_capability', '?')}"


def _has(report: dict[str, Any], batch: int, model: str) -> bool:
    return any(
        f"{model}_ms" in r for b in report["builds"].values() for k, r in b["results"].items() if _case(k)[1] == batch
    )


def speed(paths: list[str], reports: list[dict[str, Any]]) -> str:
    report = reports[0]
    if "builds" not in report:
        raise ValueError("a speed table needs a cpu_forward JSON with builds (use cpu-forward for older files)")
    profile = reports[1] if len(reports) > 1 else None
    rec = machine_record(report)
    cases = sorted({_case(k) for b in report["builds"].values() for k in b["results"]}, key=lambda c: (c[2], -c[0]))
    combos = sorted({(s, d) for s, _, d in cases}, key=lambda c: (c[1] != "float32", -c[0]))
    batches = sorted({b for _, b, _ in cases})
    extra = [
        m
        for m in ("vim_small", "zeromamba_vim_small")
        if any(f"{m}_ms" in r for b in report["builds"].values() for r in b["results"].values())
    ]
    head = ["build", "input", "ZeroMamba-S ms, b1", "resnet101 ms, b1"]
    head += [f"ZeroMamba-S / resnet101, b{b}" for b in batches]
    head += [f"{MODEL_NAMES[m]} / resnet101, b1" for m in extra]
    # the same model with its CPU batches kept whole, where the run has it
    unsplit = [b for b in batches if b > 1 and _has(report, b, "zeromamba_small_whole_batch")]
    head += [f"{MODEL_NAMES['zeromamba_small_whole_batch']} / resnet101, b{b}" for b in unsplit]
    if profile is not None:
        head.append("scan share (448, b1)")
    rows = []
    for name, data in report["builds"].items():
        for size, dtype in combos:
            key = f"{size}_b{{}}_{dtype}"
            b1 = data["results"].get(key.format(1), {})
            row = [_build_isa(report, name, data), f"{size} {dtype}"]
            row += [_ms(b1.get("zeromamba_small_ms")), _ms(b1.get("resnet101_ms"))]
            row += [
                ratio(data["results"].get(key.format(b), {}), "zeromamba_small_vs_resnet101", b == 1) for b in batches
            ]
            row += [ratio(b1, f"{m}_vs_resnet101") for m in extra]
            row += [
                ratio(data["results"].get(key.format(b), {}), "zeromamba_small_whole_batch_vs_resnet101")
                for b in unsplit
            ]
            if profile is not None:
                share = profile.get("builds", {}).get(name, {}).get("scan_share")
                row.append(f"{share:.0%}" if share is not None and (size, dtype) == (448, "float32") else "-")
            rows.append(row)
    facts = [cpu_text(rec), compiler_text(rec), date_text(report, rec), load_text(report)]
    facts.insert(0, f"{report.get('threads', '?')} threads, median of {report.get('rounds', '?')} interleaved rounds")
    return source_line(paths, *facts) + "\n\n" + table(head, rows)


BASELINES = ("resnet101", "vit_small")


def _memory(row: dict[str, Any], name: str) -> str:
    mem = row.get("peak_memory", {}).get(name)
    return f"{mem['peak_rss_mib']} (+{mem['forward_mib']})" if isinstance(mem, dict) else "-"


def cpu_forward(paths: list[str], reports: list[dict[str, Any]]) -> str:
    report = reports[0]
    results = report["results"]
    models = list(next(iter(report["times_ms"].values())))
    pairs = [(m, b) for m in models if m not in BASELINES for b in BASELINES if b in models]
    head = ["case"] + [f"{MODEL_NAMES.get(m, m)} ms" for m in models]
    head += [f"{MODEL_NAMES.get(m, m)} / {b} (range)" for m, b in pairs]
    head += [f"peak RSS MiB {MODEL_NAMES.get(m, m)} (+forward)" for m in models]
    rows = []
    for case, row in results.items():
        size, batch, dtype = _case(case)
        cells = [f"{size} batch {batch} {dtype}"] + [_ms(row.get(f"{m}_ms")) for m in models]
        cells += [ratio(row, f"{m}_vs_{b}", b == "resnet101") for m, b in pairs]
        cells += [_memory(row, m) for m in models]
        rows.append(cells)
    rec = machine_record(report)
    facts = [f"{report.get('threads', '?')} threads, median of {report.get('rounds', '?')} interleaved rounds"]
    facts += [cpu_text(rec, report.get("cpu_capability")), compiler_text(rec), date_text(report), load_text(report)]
    return source_line(paths, *facts) + "\n\n" + table(head, rows)


def profile(paths: list[str], reports: list[dict[str, Any]]) -> str:
    report = reports[0]
    rows = [[cat, f"{ms}", f"{report['profile_share'][cat]:.1%}"] for cat, ms in report["profile_ms"].items()]
    rec = machine_record(report)
    facts = [f"{report.get('size')} x {report.get('size')}, batch {report.get('batch')}, {report.get('dtype')}"]
    facts += [cpu_text(rec, report.get("cpu_capability")), compiler_text(rec), date_text(report), load_text(report)]
    return source_line(paths, *facts) + "\n\n" + table(["category", "ms", "share"], rows)


INT8_RUNS = {"native": "native", "avx2": "AVX2-capped", "avx2_vnni": "AVX2 + VNNI-capped"}


def int8(paths: list[str], reports: list[dict[str, Any]]) -> str:
    report = reports[0]
    head = ["run", "input", "ZeroMamba-S int8 ms", "float32 ms", "resnet101 ms"]
    head += ["int8 / resnet101 (range)", "int8 / float32 (range)", "top-1 agreement with float32", "load average"]
    rows, cpus, kernels = [], [], []
    for name, run in report["runs"].items():
        label = INT8_RUNS.get(name, name)
        if "failed" in run:
            rows.append([label, "failed: " + " ".join(run["failed"])[-200:]] + ["-"] * (len(head) - 2))
            continue
        rec = machine_record(run)
        cpus.append(f"{label} {cpu_text(rec)}, {compiler_text(rec)}")
        info = run.get("int8", {})
        impl = info.get("onednn_implementation") or NOT_RECORDED
        bits = info.get("activation_bits", "?")
        kernels.append(f"{label}: {info.get('kernel', '?')} int8 linears, oneDNN {impl}, {bits}-bit activations")
        agreement = [v["top1_agreement"] for v in run.get("shapes_zsl", {}).values()]
        agree = (
            "-"
            if not agreement
            else f"{min(agreement):.1%}"
            if min(agreement) == max(agreement)
            else f"{min(agreement):.1%}-{max(agreement):.1%}"
        )
        load = f"{_load(run.get('load_average_before'))} / {_load(run.get('load_average_after'))}"
        for case, row in run.get("speed", {}).items():
            if not isinstance(row, dict):
                continue
            size, batch, _ = _case(case)
            cells = [
                label,
                f"{size} b{batch}",
                _ms(row.get("zeromamba_small_int8_ms")),
                _ms(row.get("zeromamba_small_ms")),
            ]
            cells += [_ms(row.get("resnet101_ms")), ratio(row, "zeromamba_small_int8_vs_resnet101", True)]
            cells += [ratio(row, "zeromamba_small_int8_vs_zeromamba_small"), agree, load]
            rows.append(cells)
    facts = cpus + kernels + [date_text(report)]
    return source_line(paths, *facts) + "\n\n" + table(head, rows)


def scan_kernel(paths: list[str], reports: list[dict[str, Any]]) -> str:
    report = reports[0]
    head = ["compiler", "build", "lanes", "FMA", "scan ns/step by stage", "scan ms (bound)", "x bound"]
    head += ["Vim mixer ns/step (bound)", "x bound"]
    rows = []
    for b in report["builds"]:
        stages = " / ".join(f"{s['ns_per_step']:.2f}" for s in b["stages"])
        mixer = b.get("mixer", {})
        rows.append(
            [
                b.get("compiler_version") or b.get("compiler", "?"),
                b.get("isa", "?"),
                str(b.get("vector_lanes", "?")),
                "yes" if b.get("fma") else "no",
                stages,
                f"{b['network_scan_ms']} ({b.get('network_bound_ms', '-')})",
                _ms(b.get("network_x_bound")),
                f"{mixer.get('ns_per_step', '-')} ({mixer.get('bound_ns_per_step', '-')})",
                _ms(mixer.get("x_bound")),
            ]
        )
    torch_row = report.get("torch_backend")
    if torch_row:
        stages = " / ".join(f"{s['ns_per_step']:.2f}" for s in torch_row.get("stages", []))
        mixer = torch_row.get("mixer_ns_per_step", "-")
        rows.append(
            [
                "PyTorch",
                "`torch` backend",
                "-",
                "-",
                stages,
                f"{torch_row['network_scan_ms']} (-)",
                "-",
                f"{mixer} (-)",
                "-",
            ]
        )
    rec = machine_record(report)
    clock = report.get("clock", "clock " + NOT_RECORDED)
    facts = [f"{report.get('threads', '?')} thread(s), {clock}, best of {report.get('rounds', '?')} rounds"]
    facts += [cpu_text(rec), date_text(report, rec), load_text(report)]
    return source_line(paths, *facts) + "\n\n" + table(head, rows)


ENGINES = {
    "local": "local, 2 threads",
    "local_1thread": "local, 1 thread",
    "ray_1actor": "Ray Data, 1 actor",
    "ray_2actors": "Ray Data, 2 actors",
}


def batch_inference(paths: list[str], reports: list[dict[str, Any]]) -> str:
    report = reports[0]
    head = ["engine", "images/s (steady)", "images/s (end to end)", "wall ms per image", "wall fixed s"]
    head += ["CPU ms per image", "CPU fixed s"]
    rows = []
    for name, e in report["engines"].items():
        if not isinstance(e, dict) or "wall" not in e:
            continue
        rows.append(
            [
                ENGINES.get(name, name),
                _ms(e.get("images_per_s_steady")),
                _ms(e.get("images_per_s_end_to_end")),
                _ms(e["wall"].get("per_image_ms")),
                _ms(e["wall"].get("fixed_s")),
                _ms(e.get("cpu", {}).get("per_image_ms")),
                _ms(e.get("cpu", {}).get("fixed_s")),
            ]
        )
    rec = machine_record(report)
    images = report.get("images", {})
    counts = f"{images.get('small', '?')} and {images.get('large', '?')} images"
    facts = [f"{images.get('model', 'model ' + NOT_RECORDED)}, {counts}, median of {images.get('rounds', '?')} rounds"]
    facts += [cpu_text(rec), compiler_text(rec), date_text(report, rec), load_text(report)]
    return source_line(paths, *facts) + "\n\n" + table(head, rows)


def app_load(paths: list[str], reports: list[dict[str, Any]]) -> str:
    head = ["requests at once", "workers x torch threads", "one request alone", "throughput"]
    head += ["latency p50 / p90 / p99 / max", "failed", "bound: 3 x alone x requests per worker"]
    rows, facts = [], []
    for path, r in zip(paths, reports):
        lat = r["latency_s"]
        met = "met" if r.get("median_within_bound") else "NOT met"
        rows.append(
            [
                str(r.get("concurrency", "?")),
                f"{r['workers']} x {r['threads_per_worker']}",
                f"{r['single_request_s']:.1f} s",
                f"{r['throughput_per_s']:.2f} requests/s",
                " / ".join(f"{lat[k]:.1f}" for k in ("p50", "p90", "p99", "max")) + " s",
                f"{r.get('failures', '?')} of {r.get('requests', '?')}",
                f"{r.get('median_bound_s', 0):.0f} s: {met}",
            ]
        )
        rec = machine_record(r)
        facts.append(f"`{Path(path).name}`: {cpu_text(rec)}, {date_text(r)}, {load_text(r)}")
    return source_line(paths, f"model {reports[0].get('model', '?')}", *facts) + "\n\n" + table(head, rows)


ALLOCATORS = {
    "glibc": "glibc (default)",
    "glibc-retain": "glibc keeping freed memory",
    "tcmalloc": "tcmalloc",
    "jemalloc": "jemalloc, its defaults",
}


def allocator(paths: list[str], reports: list[dict[str, Any]]) -> str:
    r = reports[0]
    models = list(r["allocators"]["glibc"]["models"])
    batches = list(r["allocators"]["glibc"]["models"][models[0]]["batches"])
    head = ["allocator", "environment"] + [f"{m} {b}" for m in models for b in batches]
    head += [f"peak memory, {m}" for m in models]
    rows = []
    for name, entry in r["allocators"].items():
        env = " ".join(f"{k}={Path(v).name if k == 'LD_PRELOAD' else v}" for k, v in entry["environment"].items())
        cells = [ALLOCATORS.get(name, name), f"`{env}`" if env else "-"]
        for m in models:
            for b in batches:
                row = entry["models"][m]["batches"][b]
                speedup = ratio(row, "speedup_over_glibc").replace(" ", "x ", 1)
                cells.append(f"{row['median_ms']} ms" if name == "glibc" else speedup)
        cells += [f"{entry['models'][m]['peak_rss_mib']} MiB" for m in models]
        rows.append(cells)
    rec = machine_record(r)
    facts = [f"{r['threads']} threads, {r['size']} px, median pass of {r['rounds']} rounds of fresh processes"]
    facts += ["others: speed-up over glibc in the same round", cpu_text(rec), date_text(r, rec), load_text(r)]
    return source_line(paths, *facts) + "\n\n" + table(head, rows)


RUNTIMES = {
    "eager": "eager (fused C scan, oneDNN)",
    "compile": "`torch.compile` (fused C scan as a custom op)",
    "onnxruntime": "ONNX Runtime (`chunked` scan)",
}


def export_speed(paths: list[str], reports: list[dict[str, Any]]) -> str:
    report = reports[0]
    head = ["runtime", "batch", "ZeroMamba-S ms", "resnet101 ms", "ZeroMamba-S / resnet101 (range)"]
    rows = []
    for c in report["cases"]:
        lo, hi = c["ratio_to_resnet101_range"]
        rows.append(
            [
                RUNTIMES.get(c["runtime"], c["runtime"]),
                str(c["batch"]),
                f"{c['zeromamba_small_median_s'] * 1000:.0f}",
                f"{c['resnet101_median_s'] * 1000:.0f}",
                f"**{c['ratio_to_resnet101_median']:.2f}** ({lo:.2f}-{hi:.2f})",
            ]
        )
    rec = machine_record(report)
    size = f"{report.get('size')} x {report.get('size')}, {report.get('threads')} threads"
    facts = [f"{size}, median of {report.get('rounds')} interleaved rounds"]
    facts += [cpu_text(rec), compiler_text(rec), date_text(report), load_text(report)]
    return source_line(paths, *facts) + "\n\n" + table(head, rows)


def startup(paths: list[str], reports: list[dict[str, Any]]) -> str:
    report = reports[0]
    wall = "measurements"
    cpu = next((k for k in report["current"] if k.startswith("cpu_seconds")), None)
    versions = [v for v in ("baseline", "current") if v in report]
    head = ["whole process: wall-clock median (CPU seconds)"] + [
        {"current": "this version"}.get(v, v) for v in versions
    ]
    rows = []
    for name in report["current"][wall]:
        cells = [name]
        for v in versions:
            m = report[v].get(wall, {}).get(name)
            c = report[v].get(cpu, {}).get(name) if cpu else None
            cells.append("-" if m is None else f"{m['median_s']:.2f} s" + (f" ({c['median_s']:.2f})" if c else ""))
        rows.append(cells)
    rec = machine_record(report)
    facts = [
        f"median of {report.get('rounds', '?')} interleaved rounds",
        cpu_text(rec),
        date_text(report, rec),
        load_text(report),
    ]
    return source_line(paths, *facts) + "\n\n" + table(head, rows)


KINDS: dict[str, Callable[[list[str], list[dict[str, Any]]], str]] = {
    "speed": speed,
    "cpu-forward": cpu_forward,
    "profile": profile,
    "int8": int8,
    "scan-kernel": scan_kernel,
    "batch-inference": batch_inference,
    "app-load": app_load,
    "export-speed": export_speed,
    "startup": startup,
    "allocator": allocator,
}


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
