"""Start-up and batch benchmark: what a user waits for, each measured as a whole new process.

Prints one JSON document with, for each measurement, the wall-clock seconds of every round, their
median and minimum:

* start-up: ``import torch``, ``import torch, timm``, ``import zeromamba``, ``import zeromamba,
  timm`` (the architectures registered), ``zeromamba --help``, ``zeromamba list``;
* 200 small images (64 x 64 PNGs of the shapes dataset, the shipped ``shapes-zsl`` model): the
  whole ``zeromamba classify`` command (with its default decoding workers, and with
  ``--workers 2``), and the Python API: a script doing ``from_pretrained`` + ``classify(paths)``,
  whose own timings of the import, the load and the ``classify`` call are reported too.

Measurements are interleaved round by round, so that load drifts of a shared machine touch them
all alike; ratios are medians of per-round ratios. The CPU seconds each process used are reported
too: on a machine shared with other work they vary less than the wall-clock times.
``--baseline DIR`` (a source tree of another version, e.g. ``git archive <commit> zeromamba |
tar -x -C DIR``) runs the same commands on that version in the same rounds (its command line
through ``python -c``, the way the console script calls it).

    python benchmarks/startup.py --rounds 5 --out benchmarks/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info, write_report

N_IMAGES = 200

API_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import zeromamba
t1 = time.perf_counter()
predictor = zeromamba.from_pretrained("shapes-zsl")
t2 = time.perf_counter()
paths = sys.argv[1:]
results = predictor.classify(paths)
t3 = time.perf_counter()
assert len(results) == len(paths)
# "load" includes importing torch and timm: `import zeromamba` is lazy
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "classify_s": t3 - t2}))
"""

CLI_VIA_PYTHON = "import sys; from zeromamba.cli import main; sys.exit(main())"


def make_images(folder: Path, n: int) -> list[str]:
    import numpy as np

    from zeromamba.data.shapes import render_shape, shapes_classes

    classes = shapes_classes()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        colour, fill, shape = classes[i % len(classes)]
        path = folder / f"{i:03d}_{colour}_{fill}_{shape}.png"
        render_shape(colour, fill, shape, rng).save(path)
        paths.append(str(path))
    return paths


def timed(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, float, str]:
    """``(wall seconds, CPU seconds of the process and its children, stdout)``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({out.returncode}):\n{out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, cpu, out.stdout


def commands(python: str, zeromamba: list[str], paths: list[str], tmp: str, new_cli: bool) -> dict[str, list[str]]:
    out = os.path.join(tmp, "out.json")
    classify = [*zeromamba, "classify", *paths, "--model", "shapes-zsl"]
    # the same input for every version: the paths, JSON to a file; the new command also quietly
    classify += ["--format", "jsonl", "--output", out, "--quiet"] if new_cli else ["--json"]
    cmds = {
        "import torch": [python, "-c", "import torch"],
        "import torch, timm": [python, "-c", "import torch, timm"],
        "import zeromamba": [python, "-c", "import zeromamba"],
        "import zeromamba, timm (registered)": [
            python, "-c", "import zeromamba, timm; assert timm.list_models('zeromamba*')",
        ],
        "zeromamba --help": [*zeromamba, "--help"],
        "zeromamba list": [*zeromamba, "list"],
        f"CLI: classify {len(paths)} images": classify,
        f"Python API: {len(paths)} images (whole script)": [python, "-c", API_SCRIPT, *paths],
    }  # fmt: skip
    if new_cli:  # decoding in two worker processes (the default is none below 4 cores)
        cmds[f"CLI: classify {len(paths)} images, --workers 2"] = [*classify, "--workers", "2"]
    return cmds


def summary(times: list[float]) -> dict[str, object]:
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3), "rounds_s": times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", type=int, default=N_IMAGES)
    ap.add_argument("--baseline", help="a source tree of another zeromamba version, measured in the same rounds")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()

    python = sys.executable
    console = str(Path(python).with_name("zeromamba"))
    tmp = tempfile.mkdtemp(prefix="zeromamba-startup-")
    paths = make_images(Path(tmp), args.images)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ZEROMAMBA_"))}
    env.update(HF_HOME=os.path.join(tmp, "hf-home"), HF_HUB_OFFLINE="1")
    versions = {"current": (env, commands(python, [console], paths, tmp, new_cli=True))}
    if args.baseline:
        base_env = dict(env, PYTHONPATH=os.path.abspath(args.baseline))
        versions["baseline"] = (base_env, commands(python, [python, "-c", CLI_VIA_PYTHON], paths, tmp, False))

    times: dict[str, dict[str, list[float]]] = {v: {name: [] for name in cmds} for v, (_, cmds) in versions.items()}
    cpu: dict[str, dict[str, list[float]]] = {v: {name: [] for name in cmds} for v, (_, cmds) in versions.items()}
    api: dict[str, dict[str, list[float]]] = {v: {} for v in versions}
    for _ in range(args.rounds):
        for version, (version_env, cmds) in versions.items():
            for name, cmd in cmds.items():
                took, used, stdout = timed(cmd, version_env, tmp)
                times[version][name].append(round(took, 3))
                cpu[version][name].append(round(used, 3))
                if name.startswith("Python API"):
                    for key, value in json.loads(stdout.strip().splitlines()[-1]).items():
                        api[version].setdefault(key, []).append(round(value, 3))

    def ratio(version: str, a: str, b: str) -> float:
        return round(statistics.median(x / y for x, y in zip(times[version][a], times[version][b])), 2)

    cli_name = f"CLI: classify {args.images} images"
    report: dict[str, object] = {
        "machine": {**machine_info(), "platform": platform.platform()},
        "images": f"{args.images} PNGs of 64 x 64 (the shapes dataset), model shapes-zsl",
        "rounds": args.rounds,
    }
    for version in versions:
        report[version] = {
            "measurements": {name: summary(t) for name, t in times[version].items()},
            "cpu_seconds (user + system, all threads and child processes)": {
                name: summary(t) for name, t in cpu[version].items()
            },
            "python_api_inside_the_script": {k: summary(v) for k, v in api[version].items()},
            "ratios (median of per-round ratios)": {
                "import zeromamba / import torch": ratio(version, "import zeromamba", "import torch"),
                "import zeromamba, timm / import torch, timm": ratio(
                    version, "import zeromamba, timm (registered)", "import torch, timm"
                ),
                "zeromamba --help / import torch": ratio(version, "zeromamba --help", "import torch"),
                "CLI / Python API script": ratio(version, cli_name, f"Python API: {args.images} images (whole script)"),
            },
        }
    write_report(report, Path(args.out) if args.out else None)


if __name__ == "__main__":
    main()
