"""The kinds of figure table (``KINDS``): each turns the JSON of one benchmark into a Markdown table
with its source line (:mod:`tables` puts them into the pages)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from table_text import (
    MODEL_NAMES,
    NOT_RECORDED,
    case_key,
    compiler_text,
    cpu_text,
    date_text,
    isa_name,
    load_text,
    load_value,
    machine_record,
    ms_text,
    ratio,
    source_line,
    table,
)

# --- the kinds ------------------------------------------------------------------------------------


def _build_isa(report: dict[str, Any], name: str, data: dict[str, Any]) -> str:
    env = data.get("environment") or {}
    if env.get("ATEN_CPU_CAPABILITY") or env.get("ONEDNN_MAX_CPU_ISA"):
        capped = env.get("ATEN_CPU_CAPABILITY") or env.get("ONEDNN_MAX_CPU_ISA")
        return f"{name}: {capped.upper()}-capped"
    rec = machine_record(data) if isinstance(data.get("machine"), dict) else machine_record(report)
    return f"{name}: {isa_name(rec['isa_flags']) if 'isa_flags' in rec else data.get('cpu_capability', '?')}"


def _has(report: dict[str, Any], batch: int, model: str) -> bool:
    cases = [(k, r) for b in report["builds"].values() for k, r in b["results"].items()]
    return any(f"{model}_ms" in r for k, r in cases if case_key(k)[1] == batch)


def speed(paths: list[str], reports: list[dict[str, Any]]) -> str:
    report = reports[0]
    if "builds" not in report:
        raise ValueError("a speed table needs a cpu_forward JSON with builds (use cpu-forward for older files)")
    profile = reports[1] if len(reports) > 1 else None
    rec = machine_record(report)
    cases = sorted({case_key(k) for b in report["builds"].values() for k in b["results"]}, key=lambda c: (c[2], -c[0]))
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
            row += [ms_text(b1.get("zeromamba_small_ms")), ms_text(b1.get("resnet101_ms"))]
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
                row.append(f"{share:.1%}" if share is not None and (size, dtype) == (448, "float32") else "-")
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
        size, batch, dtype = case_key(case)
        cells = [f"{size} batch {batch} {dtype}"] + [ms_text(row.get(f"{m}_ms")) for m in models]
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
        bits = f"{info.get('activation_bits', '?')}-bit activations"
        if "weight_bits" in info:  # recorded since 7-bit weights replaced 7-bit activations without VNNI
            bits = f"{info['weight_bits']}-bit weights, {bits}"
        kernels.append(f"{label}: {info.get('kernel', '?')} int8 linears, oneDNN {impl}, {bits}")
        agreement = [v["top1_agreement"] for v in run.get("shapes_zsl", {}).values()]
        agree = (
            "-"
            if not agreement
            else f"{min(agreement):.1%}"
            if min(agreement) == max(agreement)
            else f"{min(agreement):.1%}-{max(agreement):.1%}"
        )
        load = f"{load_value(run.get('load_average_before'))} / {load_value(run.get('load_average_after'))}"
        for case, row in run.get("speed", {}).items():
            if not isinstance(row, dict):
                continue
            size, batch, _ = case_key(case)
            cells = [
                label,
                f"{size} b{batch}",
                ms_text(row.get("zeromamba_small_int8_ms")),
                ms_text(row.get("zeromamba_small_ms")),
            ]
            cells += [ms_text(row.get("resnet101_ms")), ratio(row, "zeromamba_small_int8_vs_resnet101", True)]
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
                ms_text(b.get("network_x_bound")),
                f"{mixer.get('ns_per_step', '-')} ({mixer.get('bound_ns_per_step', '-')})",
                ms_text(mixer.get("x_bound")),
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
                ms_text(e.get("images_per_s_steady")),
                ms_text(e.get("images_per_s_end_to_end")),
                ms_text(e["wall"].get("per_image_ms")),
                ms_text(e["wall"].get("fixed_s")),
                ms_text(e.get("cpu", {}).get("per_image_ms")),
                ms_text(e.get("cpu", {}).get("fixed_s")),
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
