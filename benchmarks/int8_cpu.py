"""int8 inference on the CPU: its speed against float32 and resnet101, and how far it moves the answers.

One command, three runs: the CPU as it is (``native``), the same CPU made to look like an AVX2 laptop
without VNNI (``avx2``: ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2``,
and ``ZEROMAMBA_CPU_ISA=x86-64-v3`` for zeromamba's own C kernels where that build exists), and like one
with AVX-VNNI (``avx2_vnni``: the same with ``ONEDNN_MAX_CPU_ISA=AVX2_VNNI``: Intel's cores since Alder
Lake, which have VNNI's int8 dot products but no AVX-512). Each run is a fresh process and measures:

* speed: ZeroMamba-S in float32 and in int8 (the kernel int8 chooses, and each kernel forced) and
  timm's resnet101 in float32, at 448 x 448, batch 1 and 8, in interleaved rounds (each round times
  one forward pass of each model in each case, so a shared machine's load drifts reach them alike);
  the per-round ratios to resnet101 and to ZeroMamba-S float32, medians and ranges;
* the shipped ``shapes-zsl`` model on ``shapes:SEED`` for fresh seeds (its test split: 27 x 50
  seen-class and 9 x 100 unseen-class images): the largest difference of an attribute vector over
  its largest value, int8 against float32 (max, 99th percentile, median), top-1 agreement (all 36
  classes, GZSL calibrated stacking at the model's gamma, as ``classify`` ranks them), and CZSL /
  GZSL U, S, H of each;
* the authors' parity fixtures (``tests/fixtures/official``, ``tests/fixtures/vim``: small models with
  the official code's outputs): int8 against those outputs (attributes / logits, scaled error) and
  whether the predictions match;
* ZeroMamba-S and Vim-S with random (untrained) weights: the same attribute / logit difference at full size.

The JSON records the CPU (model, family/model ids, ISA flags), PyTorch and its compiler, the C
compiler, the int8 kernel chosen (and oneDNN's implementation of it, from its verbose log), and the
load average before and after each run. Example::

    python benchmarks/int8_cpu.py                       # writes benchmarks/results/int8_cpu_<date>.json
    python benchmarks/int8_cpu.py --isa native --rounds 9 --seeds 9001
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
ISA_RUNS = {
    "native": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
        "ZEROMAMBA_CPU_ISA": "x86-64-v3",
    },
    # AVX2 with AVX-VNNI and no AVX-512: Intel's laptop and desktop cores since 2021 (Alder Lake on)
    "avx2_vnni": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2_VNNI",
        "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
        "ZEROMAMBA_CPU_ISA": "x86-64-v3",
    },
}
ISA_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "FBGEMM_ENABLE_INSTRUCTIONS",
    "ZEROMAMBA_CPU_ISA",
    "ZEROMAMBA_INT8_KERNEL",
    "OMP_NUM_THREADS",
)
FRESH_SEEDS = (9001, 2718)  # not used for training, model selection or any earlier figure


# --- the machine ---------------------------------------------------------------------------------


def _onednn_int8_implementation() -> str:
    """oneDNN's implementation of one int8 matmul here (its verbose log's name, e.g. ``brg_matmul:avx10_1_512_amx``)."""
    import torch

    w = torch.ops.onednn.qlinear_prepack(torch.ones(64, 64, dtype=torch.int8), None)
    args = (torch.ones(8, 64, dtype=torch.uint8), 1.0, 0, w, torch.ones(64), torch.zeros(64, dtype=torch.long))
    with tempfile.TemporaryFile(mode="w+") as log:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(log.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                torch.ops.onednn.qlinear_pointwise(*args, None, 1.0, 0, torch.float32, "none", [], "")
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        lines = [line.split(",") for line in log if ",exec,cpu,matmul," in line]
    return lines[-1][6] if lines else "unknown"


# --- speed ---------------------------------------------------------------------------------------


def speed(threads: int, batches: list[int], size: int, rounds: int) -> dict[str, Any]:
    import timm
    import torch

    import zeromamba
    from zeromamba.errors import Int8UnavailableError
    from zeromamba.models.int8 import quantize_int8
    from zeromamba.ops.int8_linear import INT8_KERNELS

    torch.manual_seed(0)
    f32 = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).eval()
    models = {"zeromamba_small_int8": quantize_int8(copy.deepcopy(f32))}
    chosen = models["zeromamba_small_int8"].backbone.layers[0].blocks[0].mlp.fc1.kernel
    for kernel in INT8_KERNELS:  # each kernel forced (the chosen one is the model above)
        if kernel != chosen:
            os.environ["ZEROMAMBA_INT8_KERNEL"] = kernel
            try:
                models[f"zeromamba_small_int8_{kernel}"] = quantize_int8(copy.deepcopy(f32))
            except Int8UnavailableError:
                pass
            del os.environ["ZEROMAMBA_INT8_KERNEL"]
    models["zeromamba_small"] = f32
    models["resnet101"] = timm.create_model("resnet101").eval()
    inputs = {b: torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(b)) for b in batches}
    times: dict[int, dict[str, list[float]]] = {b: {n: [] for n in models} for b in batches}
    errors = {}
    with torch.inference_mode():
        for b in batches:  # warm-up (kernel builds, first-use checks, oneDNN primitives); the int8 error
            outs = {n: m(inputs[b]) for n, m in models.items()}
            a32, a8 = outs["zeromamba_small"].attributes, outs["zeromamba_small_int8"].attributes
            errors[b] = ((a8 - a32).abs().amax(1) / a32.abs().amax(1)).max().item()
        for _ in range(rounds):
            for b in batches:
                for name, model in models.items():
                    start = time.perf_counter()
                    model(inputs[b])
                    times[b][name].append((time.perf_counter() - start) * 1000)
    out: dict[str, Any] = {"int8_kernel": chosen}
    for b in batches:
        t = times[b]
        row: dict[str, Any] = {f"{n}_ms": round(statistics.median(v), 1) for n, v in t.items()}
        pairs = [(n, "resnet101") for n in t if n != "resnet101"]
        pairs += [(n, "zeromamba_small") for n in t if n.startswith("zeromamba_small_int8")]
        for num, den in pairs:
            ratios = [a / c for a, c in zip(t[num], t[den])]
            row[f"{num}_vs_{den}"] = round(statistics.median(ratios), 3)
            row[f"{num}_vs_{den}_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
        row["untrained_weights_attribute_error"] = round(errors[b], 4)
        row["times_ms"] = {n: [round(x, 1) for x in v] for n, v in t.items()}
        out[f"{size}_b{b}"] = row
    return out


# --- answers -------------------------------------------------------------------------------------


def _row_errors(got: Any, want: Any) -> dict[str, float]:
    import torch

    rel = (got - want).abs().amax(1) / want.abs().amax(1)
    return {
        "max": round(rel.max().item(), 4),
        "p99": round(torch.quantile(rel, 0.99).item(), 4),
        "median": round(rel.median().item(), 4),
    }


def shapes(seeds: list[int], batch: int) -> dict[str, Any]:
    import torch

    import zeromamba
    from zeromamba.data import build_transform
    from zeromamba.data.shapes import load_shapes
    from zeromamba.evaluate import evaluate_attributes
    from zeromamba.models import calibrated_stacking, class_scores
    from zeromamba.models.int8 import quantize_int8

    predictor = zeromamba.from_pretrained("shapes-zsl")
    models = {"float32": predictor.model, "int8": quantize_int8(copy.deepcopy(predictor.model))}
    size = predictor.preprocess["input_size"][-1]
    crop = "letterbox" if predictor.preprocess["crop_mode"] == "letterbox" else "squash"
    out: dict[str, Any] = {}
    for seed in seeds:
        data = load_shapes(seed=seed)
        part = data.test_split()
        ds = data.dataset(part.indices, build_transform(size, train=False, crop_mode=crop))
        images = torch.stack([ds[i][0] for i in range(len(ds))])  # drawn once, for both models
        labels = torch.as_tensor(data.labels[part.indices])
        attrs = {}
        with torch.inference_mode():
            for name, model in models.items():
                attrs[name] = torch.cat([model(images[i : i + batch]).attributes for i in range(0, len(images), batch)])
        matrix = torch.nn.functional.normalize(data.class_attributes.float(), dim=1)
        seen = torch.zeros(len(matrix), dtype=torch.bool)
        seen[torch.as_tensor(part.seen)] = True
        top = {
            n: calibrated_stacking(class_scores(a, matrix), seen, predictor.gamma).argmax(1) for n, a in attrs.items()
        }
        metrics = {}
        for name, a in attrs.items():
            m = evaluate_attributes(a, labels, data.class_attributes, part.seen, part.unseen, predictor.gamma)
            metrics[name] = {k: round(getattr(m, k), 4) for k in ("czsl", "unseen", "seen", "harmonic")}
        out[f"shapes:{seed}"] = {
            "images": len(images),
            "attribute_error": _row_errors(attrs["int8"], attrs["float32"]),
            "top1_agreement": round((top["int8"] == top["float32"]).float().mean().item(), 5),
            "top1_disagreements": int((top["int8"] != top["float32"]).sum()),
            "metrics": metrics,
        }
    return out


def fixtures() -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    import zeromamba
    from zeromamba.models import calibrated_stacking, class_scores
    from zeromamba.models.int8 import quantize_int8

    def scaled(a: Any, b: Any) -> float:
        return round(((a - b).abs().max() / b.abs().max()).item(), 5)

    out: dict[str, Any] = {}
    for name in ("parity_dstate1", "parity_dstate4"):
        root = REPO / "tests" / "fixtures" / "official" / name
        expected = load_file(root / "expected.safetensors")
        meta = json.loads((root / "meta.json").read_text())
        model = quantize_int8(zeromamba.load_official(root / "zeromamba_official_format.pth"))
        if meta["config"]["d_state"] != 1:
            model.set_scan_backend("torch")
        att = expected["class_attributes"]
        seen = torch.zeros(att.shape[0], dtype=torch.bool)
        seen[meta["seen_classes"]] = True
        rows = {}
        for key in sorted(k for k in expected if k.startswith("input") and "." not in k):
            with torch.inference_mode():
                got = model(expected[key]).attributes
            gzsl = calibrated_stacking(class_scores(got, att), seen, meta["gamma"]).argmax(1)
            rows[key] = {
                "attribute_error": scaled(got, expected[f"{key}.fused_attr"]),
                "gzsl_predictions_equal": bool(torch.equal(gzsl, expected[f"{key}.gzsl_pred"])),
            }
        out[f"zeromamba {name}"] = rows
    for name in ("vim_ds16", "vim_stride8"):
        root = REPO / "tests" / "fixtures" / "vim" / name
        expected = load_file(root / "expected.safetensors")
        cfg = json.loads((root / "meta.json").read_text())["config"]
        size = cfg["img_size"]
        shape = {"img_size": tuple(size) if isinstance(size, list) else (size, size), "stride": cfg["stride"]}
        model = quantize_int8(zeromamba.load_official(root / "vim_official_format.pth", **shape))
        with torch.inference_mode():
            logits = model(expected["input0"])
        out[f"vim {name}"] = {
            "logit_error": scaled(logits, expected["input0.logits"]),
            "argmax_equal": bool(torch.equal(logits.argmax(1), expected["input0.logits"].argmax(1))),
        }
    return out


def full_size_untrained() -> dict[str, Any]:
    """ZeroMamba-S (448) and Vim-S (224) with random weights: int8 against float32."""
    import torch

    import zeromamba
    from zeromamba.models.int8 import quantize_int8

    out: dict[str, Any] = {}
    for name, size, kwargs in (
        ("zeromamba_small", 448, {"num_attributes": 312, "semantic_dim": 300}),
        ("vim_small", 224, {}),
    ):
        torch.manual_seed(0)
        model = zeromamba.create_model(name, **kwargs).eval()
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            want = model(x)
            got = quantize_int8(model)(x)
        if name.startswith("zeromamba"):
            want, got = want.attributes, got.attributes
        out[name] = {"input": size, "error": _row_errors(got, want)}
    return out


# --- one run, and the command ----------------------------------------------------------------


def child(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    from zeromamba.ops.int8_linear import int8_status

    report: dict[str, Any] = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    report["machine"] = machine_info()
    report["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    report["threads"] = args.threads
    report["int8"] = int8_status()
    report["int8"]["onednn_implementation"] = _onednn_int8_implementation()
    start = time.time()
    if not args.no_speed:
        report["speed"] = speed(args.threads, args.batches, args.size, args.rounds)
        report["load_average_after_speed"] = [round(x, 2) for x in os.getloadavg()]
    if not args.no_accuracy:
        report["shapes_zsl"] = shapes(args.seeds, batch=64)
        report["official_fixtures"] = fixtures()
        report["full_size_untrained"] = full_size_untrained()
    report["seconds"] = round(time.time() - start)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isa", nargs="+", choices=list(ISA_RUNS), default=list(ISA_RUNS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(FRESH_SEEDS))
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/int8_cpu_<date>.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    report: dict[str, Any] = {"benchmark": "int8_cpu", "date": datetime.date.today().isoformat(), "runs": {}}
    report["command"] = "python benchmarks/int8_cpu.py " + " ".join(sys.argv[1:])
    passed = [a for a in sys.argv[1:] if a not in ("--isa", *ISA_RUNS)]
    out = args.out or REPO / "benchmarks" / "results" / f"int8_cpu_{report['date']}.json"
    sys.path.insert(0, str(REPO))
    from zeromamba.fileio import write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    for isa in args.isa:
        env = {k: v for k, v in os.environ.items() if k not in ISA_ENV or k == "OMP_NUM_THREADS"}
        env.update(ISA_RUNS[isa])
        cmd = [sys.executable, __file__, "--child", *passed]
        print(f"int8_cpu: {isa} run ...", file=sys.stderr, flush=True)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            report["runs"][isa] = {"failed": res.stderr.strip().splitlines()[-5:]}
        else:
            report["runs"][isa] = {"env": ISA_RUNS[isa], **json.loads(res.stdout.strip().splitlines()[-1])}
        write_text(out, json.dumps(report, indent=1) + "\n")  # what is done so far survives an interrupted run
    print(json.dumps(report, indent=1))
    print(f"int8_cpu: wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
