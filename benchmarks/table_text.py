"""The text around a figure table: what a benchmark JSON says about its machine (CPU, instruction
sets, compiler, date, load) and the small formatting helpers every kind of table uses
(:mod:`tables`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

NOT_RECORDED = "not recorded"
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


def load_value(value: Any) -> str:
    return f"{value[0]:.1f}" if isinstance(value, list) and value else "?"


def load_text(report: dict[str, Any]) -> str:
    before = report.get("load_average_before", report.get("loadavg_before"))
    after = report.get("load_average_after", report.get("loadavg_after"))
    if before is None and after is None:
        return f"load average {NOT_RECORDED}"
    return f"load average {load_value(before)} before, {load_value(after)} after"


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


def ms_text(value: Any) -> str:
    return "-" if value is None else f"{value}"


def case_key(key: str) -> tuple[int, int, str]:
    size, batch, *dtype = key.split("_")
    return int(size), int(batch.lstrip("b")), (dtype[0] if dtype else "float32")
