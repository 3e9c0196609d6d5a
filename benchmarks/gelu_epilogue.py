"""Where the MLP's GELU is cheaper: in oneDNN's product epilogue, or as its own operator after it.

For each product ``fc1`` of ZeroMamba-S's MLPs at the given input size and batch (found by running
the model once; the products of equal shape are timed once and counted), times the fused float32
product with the exact GELU in oneDNN's epilogue and the same product followed by a separate GELU
in place on its output (as the library runs it), in interleaved rounds (one thread's CPU time by
default), and what ``zeromamba.ops.fused_linear.gelu_in_epilogue`` chooses for it. Per build (``native``, and ``avx2``
where the CPU has AVX-512: see ``benchmarks/machine.py``), each in a subprocess of its own: the
median ms per product and per forward pass (products x count) of each placement and of the choice,
and the largest difference between the two placements' outputs.

    python benchmarks/gelu_epilogue.py --out benchmarks/results/gelu_epilogue_<date>.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from machine import add_builds_argument, default_builds, machine_info, run_per_build, write_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(args: argparse.Namespace) -> dict:
    import torch

    import zeromamba
    from zeromamba.ops.fused_linear import fused_linear_available, gelu_in_epilogue

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if not fused_linear_available():
        raise SystemExit("oneDNN's fused linear is not available here: nothing to compare")
    model = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).eval()
    shapes: Counter = Counter()

    def record(mlp, inputs, output) -> None:  # the MLP calls fc1 functionally, so hook the MLP
        fc1 = mlp.fc1
        shapes.update([(inputs[0].numel() // fc1.in_features, fc1.in_features, fc1.out_features)])

    hooks = [m.register_forward_hook(record) for name, m in model.named_modules() if name.endswith(".mlp")]
    with torch.inference_mode():
        model.forward_features(torch.randn(args.batch, 3, args.size, args.size))  # the MLPs are all here
    for h in hooks:
        h.remove()
    if not shapes:
        raise SystemExit("found no mlp.fc1 products in zeromamba_small")

    pointwise = torch.ops.mkldnn._linear_pointwise
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    rows = []
    with torch.inference_mode():
        for (rows_n, k, n), count in sorted(shapes.items(), key=lambda kv: kv[0][1]):
            x, w, b = torch.randn(rows_n, k), torch.randn(n, k) * k**-0.5, torch.randn(n)
            ways = {
                "epilogue": lambda x=x, w=w, b=b: pointwise(x, w, b, "gelu", [], "none"),
                "separate": lambda x=x, w=w, b=b: torch.ops.aten.gelu_(pointwise(x, w, b, "none", [], "")),
            }
            difference = float((ways["epilogue"]() - ways["separate"]()).abs().max())
            times: dict[str, list[float]] = {k_: [] for k_ in ways}
            for r in range(args.rounds):
                for name in list(ways)[:: 1 if r % 2 == 0 else -1]:  # alternate which goes first
                    t = clock()
                    for _ in range(args.repeat):
                        ways[name]()
                    times[name].append((clock() - t) / args.repeat * 1000)
            med = {k_: statistics.median(v) for k_, v in times.items()}
            chosen = "epilogue" if gelu_in_epilogue(k) else "separate"
            rows.append(
                {
                    "rows": rows_n,
                    "in_features": k,
                    "out_features": n,
                    "count": count,
                    "epilogue_ms": round(med["epilogue"], 3),
                    "separate_ms": round(med["separate"], 3),
                    "separate_vs_epilogue": round(med["separate"] / med["epilogue"], 3),
                    "chosen": chosen,
                    "max_abs_difference": difference,
                }
            )
    total = {w_: sum(r[f"{w_}_ms"] * r["count"] for r in rows) for w_ in ("epilogue", "separate")}
    chosen_total = sum(r[f"{r['chosen']}_ms"] * r["count"] for r in rows)
    return {
        "machine": machine_info(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": args.threads,
        "clock": args.clock,
        "size": args.size,
        "batch": args.batch,
        "rounds": args.rounds,
        "products": rows,
        "per_forward_ms": {
            "all_epilogue": round(total["epilogue"], 2),
            "all_separate": round(total["separate"], 2),
            "as_chosen": round(chosen_total, 2),
            "chosen_vs_all_epilogue": round(chosen_total / total["epilogue"], 3),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="cpu: this process's CPU time")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--repeat", type=int, default=3, help="products per timing")
    add_builds_argument(ap)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        print(json.dumps(measure(args)))
        return
    builds = args.builds or default_builds()
    argv = ["--single", "--size", str(args.size), "--batch", str(args.batch), "--threads", str(args.threads)]
    argv += ["--clock", args.clock, "--rounds", str(args.rounds), "--repeat", str(args.repeat)]
    report: dict = {"benchmark": "gelu_epilogue", "machine": machine_info(), "builds_run": builds}
    report["builds"] = run_per_build(str(Path(__file__).resolve()), argv, builds)
    report["load_average_after"] = machine_info()["load_average"]
    write_report(report, args.out)


if __name__ == "__main__":
    main()
