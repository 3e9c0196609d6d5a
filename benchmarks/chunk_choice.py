"""How :data:`zeromamba.ops.chunked_scan.CHUNK` is chosen: the ``"chunked"`` cross scan alone at
ZeroMamba-S's first stage at 448 (112 x 112 positions, 192 channels, batch 1), exported to ONNX and
run by ONNX Runtime (CPU execution provider) and eagerly by PyTorch, for each allowed chunk length
(2, 4, 8: ``CHUNK * 20 / 2 <= 80`` keeps every exponent in float32's range). Medians of ``--repeats``
calls, JSON on stdout.

    python benchmarks/chunk_choice.py --threads 2 --out benchmarks/results/chunk_choice_<date>.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn
from machine import machine_info

from zeromamba.exporter import DEFAULT_OPSET
from zeromamba.fileio import write_text
from zeromamba.ops.chunked_scan import CHUNK, cross_scan_chunked

CHUNKS = (2, 4, 8)


class _Stage1Scan(nn.Module):
    def __init__(self, weights: tuple[torch.Tensor, ...], chunk: int):
        super().__init__()
        self.weights = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in weights])
        self.chunk = chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cross_scan_chunked(x, *self.weights, chunk=self.chunk)


def _median_seconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    D, R = 192, 6
    x = torch.randn(1, 112, 112, D, generator=g)
    weights = (
        torch.randn(4, R + 2, D, generator=g) * 0.1,
        torch.randn(4, D, R, generator=g) * 0.3,
        torch.randn(4, D, generator=g) - 3,
        torch.zeros(4 * D, 1),
        torch.ones(4 * D),
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    load_before = os.getloadavg()
    result: dict[str, dict[str, float]] = {"onnxruntime_seconds": {}, "eager_seconds": {}}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        for chunk in CHUNKS:
            module = _Stage1Scan(weights, chunk).eval()
            path = Path(tmp) / f"chunk{chunk}.onnx"
            torch.onnx.export(module, (x,), str(path), dynamo=True, opset_version=DEFAULT_OPSET, verbose=False)
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: x.numpy()}
            run_onnx = lambda s=session, f=feed: s.run(None, f)  # noqa: E731
            result["onnxruntime_seconds"][str(chunk)] = _median_seconds(run_onnx, args.repeats)
            result["eager_seconds"][str(chunk)] = _median_seconds(lambda m=module: m(x), args.repeats)
    out = {
        "benchmark": "chunk_choice",
        "machine": machine_info(),
        "date": datetime.date.today().isoformat(),
        "shape": [1, 112, 112, D],
        "threads": args.threads,
        "repeats": args.repeats,
        **result,
        "chunk_in_use": CHUNK,
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    sys.exit(main())
