"""Where a ZeroMamba model can run, and how fast: eager, torch.compile and ONNX Runtime, each against
timm's resnet101 run the same way, in one run.

ZeroMamba-S (random weights: speed does not depend on them) and resnet101 at 448 x 448, batch 1 and
8, float32, on ``--threads`` CPU threads (``torch.set_num_threads``; ONNX Runtime's
``intra_op_num_threads``, one inter-op thread). Runtimes:

* ``eager`` -- the model as the predictor runs it (ZeroMamba: the fused C scan and oneDNN linear
  layers; resnet101: plain PyTorch);
* ``compile`` -- ``torch.compile(model)`` (inductor; ZeroMamba's scan stays the fused C kernel, a
  registered custom op that inductor calls as one node), compiled once per batch size before timing
  (the compile time is recorded);
* ``compile-frozen`` -- the same with inductor's ``freezing`` on (weights taken as constants: oneDNN
  prepacks them and fuses the linear layers' activations and adds, as the eager path does by hand);
* ``onnxruntime`` -- the ONNX export (``zeromamba.export`` for ZeroMamba, whose scan is then the
  plain-op ``"chunked"`` backend; ``torch.onnx.export`` with ``dynamo=True`` and a dynamic batch for
  resnet101), CPU execution provider, default graph optimisations.

Rounds are interleaved: each round times one call of every (model, runtime, batch), so a shared
machine's load drifts reach all alike; per (runtime, batch) the JSON gives both models' medians and
the median (and range) of the per-round ratio ZeroMamba / resnet101. The load average is recorded
before and after. Also measured: the ``"chunked"`` scan alone at the first stage's shape for chunk
lengths 2, 4 and 8 (how :data:`zeromamba.ops.chunked_scan.CHUNK` was chosen), and the largest
scaled difference of each runtime's ZeroMamba output from eager.

    python benchmarks/export_speed.py --threads 2 --out benchmarks/results/export_speed_<date>.json
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn as nn
from machine import machine_info

import zeromamba
from zeromamba.exporter import DEFAULT_OPSET
from zeromamba.fileio import write_text
from zeromamba.ops.chunked_scan import CHUNK, cross_scan_chunked

RUNTIMES = ("eager", "compile", "compile-frozen", "onnxruntime")


def _zeromamba_s() -> nn.Module:
    torch.manual_seed(0)
    return zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).eval()


def _resnet101() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("resnet101", pretrained=False).eval()


def _first(out: Any) -> torch.Tensor:
    """The tensor to compare: ZeroMamba's attributes, a classifier's logits."""
    return out.attributes if hasattr(out, "attributes") else out


def _ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnx_file(name: str, model: nn.Module, size: int, folder: Path) -> Path:
    if name == "zeromamba_small":
        return zeromamba.export(model, folder / name, input_size=(size, size), verify=False).model_file
    path = folder / f"{name}.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (torch.randn(2, 3, size, size),),
            input_names=["images"],
            opset_version=DEFAULT_OPSET,
            dynamo=True,
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
        )
    program.save(path, external_data=False)
    return path


def _runners(
    name: str,
    model: nn.Module,
    size: int,
    batches: list[int],
    threads: int,
    folder: Path,
    info: dict[str, Any],
    runtimes: list[str],
) -> dict[tuple[str, int], Callable[[torch.Tensor], Any]]:
    """``(runtime, batch) -> call``, every one warmed up (compiled, exported) already."""
    out: dict[tuple[str, int], Callable[[torch.Tensor], Any]] = {}
    for b in batches:
        out[("eager", b)] = lambda x, m=model: _first(m(x))
    for runtime in ("compile", "compile-frozen"):
        if runtime not in runtimes:
            continue
        # a copy of its own per runtime: dynamo would otherwise reuse the other's compiled graph
        compiled = torch.compile(copy.deepcopy(model))
        for b in batches:
            start = time.perf_counter()
            with torch._inductor.config.patch(freezing=runtime == "compile-frozen"), torch.inference_mode():
                compiled(torch.randn(b, 3, size, size))
            info.setdefault(f"{runtime}_seconds", {})[str(b)] = round(time.perf_counter() - start, 1)
            out[(runtime, b)] = lambda x, m=compiled: _first(m(x))
    if "onnxruntime" in runtimes:
        start = time.perf_counter()
        session = _ort_session(_onnx_file(name, model, size, folder), threads)
        info["onnx_export_seconds"] = round(time.perf_counter() - start, 1)
        for b in batches:
            out[("onnxruntime", b)] = lambda x, s=session: torch.from_numpy(s.run(None, {"images": x.numpy()})[0])
    return out


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _chunk_choice(threads: int, repeats: int) -> dict[str, float]:
    """The chunked scan alone at ZeroMamba-S's first stage (112 x 112 positions, 192 channels, batch 1)."""
    g = torch.Generator().manual_seed(0)
    D, R = 192, 6
    args = (
        torch.randn(1, 112, 112, D, generator=g),
        torch.randn(4, R + 2, D, generator=g) * 0.1,
        torch.randn(4, D, R, generator=g) * 0.3,
        torch.randn(4, D, generator=g) - 3,
        torch.zeros(4 * D, 1),
        torch.ones(4 * D),
    )
    result = {}
    with torch.inference_mode():
        for chunk in (2, 4, 8):
            cross_scan_chunked(*args, chunk=chunk)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                cross_scan_chunked(*args, chunk=chunk)
                times.append(time.perf_counter() - start)
            result[str(chunk)] = round(statistics.median(times), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    runtimes = [r for r in RUNTIMES if r in args.runtimes or r == "eager"]
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    chunk_times = _chunk_choice(args.threads, 5)

    names = {"zeromamba_small": _zeromamba_s, "resnet101": _resnet101}
    info: dict[str, dict[str, Any]] = {n: {} for n in names}
    runners: dict[str, dict[tuple[str, int], Callable[[torch.Tensor], Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in names.items():
            where = (args.size, args.batches, args.threads, Path(tmp), info[name], runtimes)
            runners[name] = _runners(name, build(), *where)

        inputs = {b: torch.randn(b, 3, args.size, args.size, generator=_seeded(b)) for b in args.batches}
        agreement: dict[str, float] = {}
        with torch.inference_mode():
            for b in args.batches:
                want = runners["zeromamba_small"][("eager", b)](inputs[b])
                for runtime in runtimes[1:]:
                    got = runners["zeromamba_small"][(runtime, b)](inputs[b])
                    err = float((got - want).abs().max() / want.abs().max())
                    agreement[f"{runtime}_batch{b}"] = err

        times: dict[tuple[str, str, int], list[float]] = {}
        with torch.inference_mode():
            for _ in range(args.rounds):
                for runtime in runtimes:
                    for b in args.batches:
                        for name in names:
                            start = time.perf_counter()
                            runners[name][(runtime, b)](inputs[b])
                            times.setdefault((name, runtime, b), []).append(time.perf_counter() - start)

    cases = []
    for runtime in runtimes:
        for b in args.batches:
            zm, rn = times[("zeromamba_small", runtime, b)], times[("resnet101", runtime, b)]
            ratios = [z / r for z, r in zip(zm, rn)]
            cases.append(
                {
                    "runtime": runtime,
                    "batch": b,
                    "zeromamba_small_median_s": round(statistics.median(zm), 4),
                    "resnet101_median_s": round(statistics.median(rn), 4),
                    "zeromamba_small_images_per_s": round(b / statistics.median(zm), 2),
                    "ratio_to_resnet101_median": round(statistics.median(ratios), 3),
                    "ratio_to_resnet101_range": [round(min(ratios), 3), round(max(ratios), 3)],
                }
            )
    versions = {"torch": torch.__version__, "timm": timm.__version__, "numpy": np.__version__}
    if "onnxruntime" in runtimes:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    result = {
        "benchmark": "export_speed",
        "machine": machine_info(),
        "date": datetime.date.today().isoformat(),
        "size": args.size,
        "threads": args.threads,
        "rounds": args.rounds,
        "float32": True,
        "cases": cases,
        "zeromamba_small_scaled_difference_from_eager": agreement,
        "chunked_scan_stage1_seconds_by_chunk": chunk_times,
        "chunk_in_use": CHUNK,
        "build": info,
        "onnx_opset": DEFAULT_OPSET,
        "versions": {**versions, "python": platform.python_version()},
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    sys.exit(main())
