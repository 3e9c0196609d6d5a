"""Batch inference on this machine: images/s of ``zeromamba classify`` with the local engine and with
Ray (one and two actors), the per-image cost Ray adds, and the per-image costs at 448 px that
``docs/batch-inference.md`` sizes a cluster from.

1. Engines (the shipped ``shapes-zsl`` model, drawn 80-100 px PNGs, ``--format parquet``), each run a
   whole new command as a user runs it: ``local`` (PyTorch's default threads), ``local_1thread``
   (``OMP_NUM_THREADS=1``: what one Ray actor of one CPU gets), ``ray_1actor`` and ``ray_2actors``
   (``--engine ray``, a private local Ray instance started by the command). Each is run on
   ``--small`` and ``--large`` images; the per-image cost is the difference of the two wall times over
   the difference of the counts (start-up, model loading and Ray's start cancel out), the fixed cost
   what remains. The same is done with the CPU seconds of the whole process tree (the command, and
   for Ray its raylet, its actors and its other workers; sampled every 50 ms), which a loaded
   machine inflates far less than wall-clock time. Configurations are interleaved round by round (a
   shared machine's load drifts touch them alike); medians over the rounds.
2. Per-image costs at 448 px, in this process, one thread: ZeroMamba-S (the architecture of
   ``cub-gzsl``, random weights: the same arithmetic) on preprocessed inputs in batches of 8, and
   decoding plus preprocessing one 1024 x 768 JPEG photo-like image to the model's 448 x 448 input.

    python benchmarks/batch_inference.py --rounds 3 --out benchmarks/results/batch_inference.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import write_report

CONFIGS = ("local", "local_1thread", "ray_1actor", "ray_2actors")


def cpu_info() -> dict[str, object]:
    """The CPU model, its ISA flags of note, the compiler of the C kernels, the cores."""
    model, flags = platform.processor(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.*)$", text, re.M).group(1)  # type: ignore[union-attr]
        family = re.search(r"^cpu family\s*:\s*(\d+)$", text, re.M).group(1)  # type: ignore[union-attr]
        number = re.search(r"^model\s*:\s*(\d+)$", text, re.M).group(1)  # type: ignore[union-attr]
        model += f" (family {family}, model {number}{': Sapphire Rapids' if (family, number) == ('6', '143') else ''})"
        flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M).group(1).split()  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
    compiler = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    return {
        "cpu_model": model,
        "isa_flags": [f for f in wanted if f in flags],
        "cores": os.cpu_count(),
        "compiler": compiler[0] if compiler else None,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }


def draw_images(folder: Path, count: int) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "app"))
    from batch_support import draw_collection

    draw_collection(folder, count, seed=1)
    return folder


def command(config: str, images: Path, out: Path) -> tuple[list[str], dict[str, str]]:
    zeromamba = str(Path(sys.executable).with_name("zeromamba"))
    args = [zeromamba, "classify", str(images), "--model", "shapes-zsl", "--top-k", "3", "--output", str(out), "-q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "OMP_NUM_THREADS"))}
    # a token of its own for each private Ray instance: nothing written to the home folder
    env.update(HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token")
    env["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    if config.startswith("local"):
        args += ["--format", "parquet", "--workers", "0"]
        if config == "local_1thread":
            env["OMP_NUM_THREADS"] = "1"
    else:
        args += ["--engine", "ray", "--actors", "1" if config == "ray_1actor" else "2"]
    return args, env


OUTPUT_BYTES: dict[str, int] = {}


def run_tree(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int, str]:
    """Run ``args``; ``(wall s, CPU s of it and every process under it, exit code, stderr)``. Each
    process's CPU time is its last sample (every 50 ms): a process loses at most its last 50 ms."""
    import psutil

    cpu: dict[tuple[int, float], float] = {}
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = psutil.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            try:
                tree = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                tree = []
            for p in tree:
                try:
                    with p.oneshot():
                        times = p.cpu_times()
                        cpu[(p.pid, p.create_time())] = times.user + times.system
                except psutil.Error:
                    continue
            time.sleep(0.05)
        wall = time.perf_counter() - start
        err.seek(0)
        return wall, sum(cpu.values()), proc.returncode, err.read()


def timed_run(config: str, images: Path, work: Path) -> tuple[float, float]:
    out = work / f"{config}.parquet"
    args, env = command(config, images, out)
    wall, cpu, code, stderr = run_tree(args, env, work)
    if code != 0:
        raise SystemExit(f"{config} failed ({code}):\n{stderr[-3000:]}")
    OUTPUT_BYTES[f"{config}/{images.name}"] = out.stat().st_size
    out.unlink()
    return wall, cpu


def _costs(times: dict[int, list[float]], small: int, large: int) -> dict[str, object]:
    per_round = [(b - a) / (large - small) for a, b in zip(times[small], times[large])]
    cost = statistics.median(per_round)
    return {
        "s": {str(n): [round(t, 2) for t in times[n]] for n in (small, large)},
        "per_image_ms_rounds": [round(1000 * c, 2) for c in per_round],
        "per_image_ms": round(1000 * cost, 2),
        "fixed_s": round(statistics.median(times[small]) - small * cost, 2),
    }


def engines(rounds: int, small: int, large: int, configs: list[str], work: Path) -> dict[str, object]:
    folders = {n: draw_images(work / f"images{n}", n) for n in (small, large)}
    walls: dict[str, dict[int, list[float]]] = {c: {small: [], large: []} for c in configs}
    cpus: dict[str, dict[int, list[float]]] = {c: {small: [], large: []} for c in configs}
    for r in range(rounds):
        order = configs[r % len(configs) :] + configs[: r % len(configs)]
        for config in order:
            for n in (small, large):
                wall, cpu = timed_run(config, folders[n], work)
                walls[config][n].append(wall)
                cpus[config][n].append(cpu)
            w, c = walls[config], cpus[config]
            print(
                f"round {r + 1} {config}: wall {w[small][-1]:.1f} / {w[large][-1]:.1f} s, "
                f"cpu {c[small][-1]:.1f} / {c[large][-1]:.1f} s, load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )
    report: dict[str, object] = {}
    for config in configs:
        wall, cpu = _costs(walls[config], small, large), _costs(cpus[config], small, large)
        per_image = wall["per_image_ms"]
        report[config] = {
            "wall": wall,
            "cpu": cpu,
            "images_per_s_steady": round(1000 / per_image, 2) if per_image > 0 else None,  # type: ignore[operator]
            "images_per_s_end_to_end": round(large / statistics.median(walls[config][large]), 2),
        }
    size = OUTPUT_BYTES.get(f"{configs[0]}/images{large}")
    if size:  # top-3 records of the shipped model's 36 classes
        report["parquet_bytes_per_row_top3"] = round(size / large, 1)
    if "ray_1actor" in report and "local_1thread" in report:
        ray, local = report["ray_1actor"], report["local_1thread"]
        for kind in ("wall", "cpu"):
            r, l_ = ray[kind], local[kind]  # type: ignore[index]
            report[f"ray_overhead_{kind}"] = {
                "per_image_ms": round(r["per_image_ms"] - l_["per_image_ms"], 2),
                "fixed_s": round(r["fixed_s"] - l_["fixed_s"], 2),
            }
    return report


def costs_at_448(rounds: int) -> dict[str, object]:
    """One thread: ZeroMamba-S forward per image (batches of 8) and decode + preprocess of a photo."""
    import io

    import numpy as np
    import torch
    from PIL import Image

    import zeromamba
    from zeromamba.images import prepare_image
    from zeromamba.preprocess_config import resolve_preprocess

    torch.set_num_threads(1)
    model = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).eval()
    rng = np.random.default_rng(0)
    predictor = zeromamba.Predictor(model, class_attributes=rng.uniform(0, 1, (200, 312)), batch_size=8)
    inputs = torch.randn(8, 3, 448, 448)
    predictor.classify(inputs[:2])  # kernels built and checked
    forward, forward_cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        predictor.classify(inputs, top_k=5)
        forward.append((time.perf_counter() - start) / 8)
        forward_cpu.append((time.process_time() - start_cpu) / 8)
    # a photo-like JPEG: smooth gradients and noise, 1024 x 768, quality 90
    y, x = np.mgrid[0:768, 0:1024]
    pixels = np.stack([x / 4, y / 3, (x + y) / 7], -1) + rng.normal(0, 12, (768, 1024, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    preprocess = resolve_preprocess(None)  # 448 x 448, the authors' squash
    decode, decode_cpu = [], []
    for _ in range(rounds * 5):
        start, start_cpu = time.perf_counter(), time.process_time()
        prepare_image(data, preprocess)
        decode.append(time.perf_counter() - start)
        decode_cpu.append(time.process_time() - start_cpu)
    return {
        "model": "zeromamba_small (312 attributes, 200 classes), random weights",
        "threads": 1,
        "forward_per_image_ms_rounds": [round(1000 * t, 1) for t in forward],
        "forward_per_image_ms": round(1000 * statistics.median(forward), 1),
        # CPU seconds of this process (all its threads): what a loaded machine inflates far less
        "forward_cpu_per_image_ms_rounds": [round(1000 * t, 1) for t in forward_cpu],
        "forward_cpu_per_image_ms": round(1000 * statistics.median(forward_cpu), 1),
        "jpeg_bytes": len(data),
        "decode_preprocess_per_image_ms": round(1000 * statistics.median(decode), 1),
        "decode_preprocess_cpu_per_image_ms": round(1000 * statistics.median(decode_cpu), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--small", type=int, default=40)
    ap.add_argument("--large", type=int, default=240)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--skip-448", action="store_true", help="only the engines")
    ap.add_argument(
        "--skip-engines", action="store_true", help="only the 448 px costs (with --out: the file's engines are kept)"
    )
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    report: dict[str, object] = {
        "benchmark": "batch_inference",
        "date": datetime.date.today().isoformat(),
        **cpu_info(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "images": {"small": args.small, "large": args.large, "model": "shapes-zsl (shipped)", "rounds": args.rounds},
    }
    import ray
    import torch

    report.update(torch=torch.__version__, ray=ray.__version__)
    if args.skip_engines:
        if args.out and args.out.exists():
            earlier = json.loads(args.out.read_text())
            report.update({k: earlier[k] for k in ("images", "engines", "load_average_after_engines") if k in earlier})
            report["load_average_before_engines"] = earlier.get("load_average_before")
    else:
        with tempfile.TemporaryDirectory(prefix="zmbench") as work:
            report["engines"] = engines(args.rounds, args.small, args.large, list(args.configs), Path(work))
        report["load_average_after_engines"] = [round(x, 2) for x in os.getloadavg()]
    if not args.skip_448:
        report["costs_448"] = costs_at_448(args.rounds)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_report(report, args.out)


if __name__ == "__main__":
    main()
