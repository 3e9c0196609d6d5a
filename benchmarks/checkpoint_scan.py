"""What the checks before ``torch.load`` cost, and how fast a hostile pickle is refused.

A release-like checkpoint (``--params`` small tensors in ``model`` plus AdamW state for each: step,
exp_avg, exp_avg_sq; the pickle has ~120 opcodes per parameter) is written with ``torch.save``; then,
in interleaved rounds, the opcode scan of its ``data.pkl`` alone, ``torch.load(weights_only=True)``
alone and :func:`zeromamba.format.torch_checkpoint.read_torch_checkpoint` (container + scan +
``torch.load`` + nothing else) are timed, best of ``--rounds``. Then a 100 MB legacy-format file of
one-byte opcodes (``N0`` repeated) is refused by ``zeromamba.load_official`` (the scan stops at its
opcode cap). Prints JSON (CPU model and flags, load average, Python's compiler).

    python benchmarks/checkpoint_scan.py --out benchmarks/results/checkpoint_scan.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
import zipfile
from pathlib import Path

import torch

import zeromamba
from zeromamba.errors import CheckpointError
from zeromamba.format.torch_checkpoint import read_torch_checkpoint
from zeromamba.pickle_scan import scan_pickles


def cpu() -> dict[str, str]:
    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model.strip():
                model = line.split(":", 1)[1].strip()
            elif line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].strip()
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags.split()]
    return {"model": model, "isa": " ".join(isa), "machine": platform.machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out")
    args = parser.parse_args()

    n = args.params
    state = {f"layers.{i}.weight": torch.zeros(4) for i in range(n)}
    optimizer = {
        "state": {
            i: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(4), "exp_avg_sq": torch.zeros(4)} for i in range(n)
        },
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": list(range(n))}],
    }
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "release.pth"
        buf = io.BytesIO()
        torch.save({"model": state, "optimizer": optimizer, "epoch": 299}, buf)
        path.write_bytes(buf.getvalue())
        pkl = zipfile.ZipFile(path).read("archive/data.pkl")
        file_bytes = path.stat().st_size
        opcodes = scan_pickles(pkl).opcodes
        times: dict[str, list[float]] = {"scan": [], "torch_load": [], "checked_read": []}
        for _ in range(args.rounds):  # interleaved, so load changes hit all three alike
            for name, fn in (
                ("scan", lambda: scan_pickles(pkl)),
                ("torch_load", lambda: torch.load(path, weights_only=True)),
                ("checked_read", lambda: read_torch_checkpoint(path)),
            ):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])

        hostile = Path(tmp) / "long.pth"
        with open(hostile, "wb") as f:
            f.write(b"\x80\x02")
            for _ in range(100):
                f.write(b"N0" * (1 << 19))
        t0 = time.perf_counter()
        try:
            zeromamba.load_official(hostile)
            refused = ""
        except CheckpointError as e:
            refused = str(e)[:160]
        hostile_s = time.perf_counter() - t0
        loads.append(os.getloadavg()[0])

    best = {k: min(v) for k, v in times.items()}
    result = {
        "what": "checks before torch.load on a release-like checkpoint; a 100 MB hostile legacy pickle",
        "cpu": cpu(),
        "python": platform.python_version(),
        "python_compiler": platform.python_compiler(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": loads,
        "checkpoint": {
            "parameters": n,
            "pickle_bytes": len(pkl),
            "opcodes": opcodes,
            "file_bytes": file_bytes,
        },
        "best_seconds": best,
        "all_seconds": times,
        "scan_us_per_opcode": 1e6 * best["scan"] / opcodes,
        "checked_read_over_torch_load": best["checked_read"] / best["torch_load"],
        "hostile_100MB": {"seconds": hostile_s, "refused": refused},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
