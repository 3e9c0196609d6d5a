"""The documentation's figure tables are what ``benchmarks/tables.py`` prints from the benchmarks'
JSON: a block in README.md or docs/ that differs (a figure typed by hand, a JSON re-run) fails here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import REPO

SCRIPT = REPO / "benchmarks" / "tables.py"


@pytest.fixture(scope="module")
def tables() -> Any:
    # the script imports its sibling modules (table_kinds, table_text), as it does when run
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("zeromamba_bench_tables", SCRIPT)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_every_table_in_the_readme_and_docs_is_what_the_script_prints(tables: Any) -> None:
    stale = []
    for path in tables.default_files(REPO):
        text = path.read_text("utf-8")
        new, changed = tables.rewrite(text, str(path.relative_to(REPO)), REPO)
        stale += changed
        assert (new == text) == (not changed)
    assert not stale, "\n".join(stale) + "\nrun: python benchmarks/tables.py --write"


def _machine(flags: tuple[str, ...] = ("avx2", "fma", "avx512f", "avx512_bf16", "amx")) -> dict[str, Any]:
    isa = {f: f in flags for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx")}
    return {
        "date": "2030-01-02T03:04:05",
        "cpu_model": "Test CPU 9000",
        "cpu_count": 2,
        "virtualised": False,
        "isa_flags": isa,
        "compiler": {"command": "cc", "version": "cc (Test) 99.1"},
    }


def _row(zm: float, rn: float) -> dict[str, Any]:
    return {
        "zeromamba_small_ms": zm,
        "resnet101_ms": rn,
        "zeromamba_small_vs_resnet101": round(zm / rn, 3),
        "zeromamba_small_vs_resnet101_range": [round(zm / rn - 0.05, 3), round(zm / rn + 0.05, 3)],
    }


def speed_report() -> dict[str, Any]:
    """A small cpu_forward JSON of the shape cpu_forward.py writes with --builds native avx2."""
    native = {"448_b1_float32": _row(500.0, 400.0), "448_b8_float32": _row(3900.0, 4000.0)}
    native["224_b1_float32"] = _row(140.0, 117.0)
    avx2 = {"448_b1_float32": _row(700.0, 500.0), "448_b8_float32": _row(6000.0, 5000.0)}
    return {
        "benchmark": "cpu_forward",
        "machine": _machine(),
        "threads": 2,
        "rounds": 5,
        "load_average_before": [0.5, 0.4, 0.3],
        "load_average_after": [0.9, 0.5, 0.3],
        "builds": {
            "native": {"environment": {}, "machine": _machine(), "results": native},
            "avx2": {
                "environment": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
                "machine": _machine(),
                "results": avx2,
            },
        },
    }


def test_the_speed_table_names_its_file_cpu_isa_compiler_and_date(tables: Any) -> None:
    body = tables.KINDS["speed"](["results/speed.json"], [speed_report()])
    source, _, grid = body.partition("\n\n")
    for fact in ("`results/speed.json`", "Test CPU 9000", "AVX-512, AVX512-BF16, AMX", "cc (Test) 99.1", "2030-01-02"):
        assert fact in source, fact
    rows = grid.splitlines()[2:]
    assert len(rows) == 4  # two builds x two sizes
    assert rows[0].startswith(
        "| native: AVX-512, AVX512-BF16, AMX | 448 float32 | 500.0 | 400.0 | **1.25 (1.20-1.30)** | 0.97"
    )
    assert rows[2].startswith("| avx2: AVX2-capped | 448 float32 | 700.0 | 500.0 | **1.40")
    assert rows[3].endswith("| - |")  # no 224 run for that build: said, not invented


def test_missing_machine_facts_are_said_to_be_unrecorded(tables: Any) -> None:
    report = speed_report()
    del report["machine"]
    for build in report["builds"].values():
        del build["machine"]
    body = tables.KINDS["speed"](["x.json"], [report])
    assert "CPU model not recorded" in body and "compiler not recorded" in body and "date not recorded" in body


def test_a_changed_figure_makes_check_fail_and_write_fixes_it(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    data = tmp_path / "results" / "speed.json"
    data.write_text(json.dumps(speed_report()))
    page = tmp_path / "speed.md"
    page.write_text("# Speed\n\nBefore.\n\n<!-- table: speed results/speed.json -->\n<!-- /table -->\n\nAfter.\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, str(SCRIPT), *args, "--root", str(tmp_path), str(page)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    assert run("--check").returncode == 1  # an empty block is stale
    assert run("--write").returncode == 0
    text = page.read_text()
    assert text.startswith("# Speed\n\nBefore.\n\n<!-- table: speed results/speed.json -->\n") and text.endswith(
        "<!-- /table -->\n\nAfter.\n"
    )
    assert "| 500.0 | 400.0 |" in text
    assert run("--check").returncode == 0
    report = speed_report()
    report["builds"]["native"]["results"]["448_b1_float32"]["zeromamba_small_ms"] = 501.0
    data.write_text(json.dumps(report))
    check = run("--check")
    assert check.returncode == 1
    assert f"{page}:5: the speed table from results/speed.json differs" in check.stdout
    # a figure typed over by hand is stale too
    run("--write")
    page.write_text(page.read_text().replace("| 501.0 |", "| 450.0 |"))
    assert run("--check").returncode == 1


def test_broken_markers_and_unknown_kinds_are_errors(tables: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without its '<!-- /table -->' line"):
        tables.rewrite("<!-- table: speed a.json -->\ntext\n", "page.md", tmp_path)
    with pytest.raises(ValueError, match="unknown table kind 'sped'"):
        tables.rewrite("<!-- table: sped a.json -->\n<!-- /table -->\n", "page.md", tmp_path)
    with pytest.raises(ValueError, match="a.json does not exist"):
        tables.rewrite("<!-- table: speed a.json -->\n<!-- /table -->\n", "page.md", tmp_path)
    # a marker shown as an example inside a code block is left alone
    example = "```markdown\n<!-- table: speed a.json -->\n<!-- /table -->\n```\n"
    assert tables.rewrite(example, "page.md", tmp_path) == (example, [])


def test_the_int8_table_reads_each_run(tables: Any) -> None:
    def run(cap: str | None, int8_ms: float) -> dict[str, Any]:
        machine = {
            "cpu_model": "Test CPU 9000",
            "isa_flags": {"avx2": True, "avx512f": True},
            "c_compiler": "cc (Test) 99.1",
            "cpu_count": 2,
        }
        row = _row(500.0, 400.0) | {"zeromamba_small_int8_ms": int8_ms}
        row |= {"zeromamba_small_int8_vs_resnet101": int8_ms / 400, "zeromamba_small_int8_vs_resnet101_range": [1, 2]}
        row |= {"zeromamba_small_int8_vs_zeromamba_small": int8_ms / 500}
        return {
            "env": {"ATEN_CPU_CAPABILITY": cap} if cap else {},
            "load_average_before": [1.0, 1, 1],
            "load_average_after": [2.0, 1, 1],
            "machine": machine,
            "int8": {"kernel": "onednn", "activation_bits": 8, "onednn_implementation": "brg:avx512_core_vnni"},
            "speed": {"int8_kernel": "onednn", "448_b1": row},
            "shapes_zsl": {"shapes:1": {"top1_agreement": 0.995}, "shapes:2": {"top1_agreement": 1.0}},
        }

    report = {
        "benchmark": "int8_cpu",
        "date": "2030-01-02",
        "runs": {"native": run(None, 300.0), "avx2": run("avx2", 450.0)},
    }
    body = tables.KINDS["int8"](["int8.json"], [report])
    assert "brg:avx512_core_vnni" in body and "8-bit activations" in body and "2030-01-02" in body
    assert (
        "| native | 448 b1 | 300.0 | 500.0 | 400.0 | **0.75 (1.00-2.00)** | 0.60 | 99.5%-100.0% | 1.0 / 2.0 |" in body
    )
    assert "| AVX2-capped | 448 b1 | 450.0 |" in body


def test_the_speed_table_takes_the_scan_share_from_a_profile(tables: Any) -> None:
    profile = {"benchmark": "profile_cpu", "builds": {"native": {"scan_share": 0.174}, "avx2": {"scan_share": 0.25}}}
    grid = tables.KINDS["speed"](["a.json", "b.json"], [speed_report(), profile]).split("\n\n")[1]
    assert grid.splitlines()[0].endswith("| scan share (448, b1) |")
    rows = grid.splitlines()[2:]
    # one decimal: a share of 10.4% must not read as 10%
    assert rows[0].endswith("| 17.4% |") and rows[1].endswith("| - |") and rows[2].endswith("| 25.0% |")
