"""How long reading a class-attribute CSV takes, by class count (the first reader was quadratic).

Writes CSVs of 5k, 20k and 100k classes (a header, then ``class_<i>`` and ``--attributes`` values in
[0, 1] per row) and times :func:`zeromamba.classes.read_attribute_table` and
:func:`zeromamba.classes.load_class_attributes` on each, best of ``--rounds``. ``--baseline REF``
(default: the commit before the linear reader) times that commit's ``read_attribute_table`` on the
sizes up to ``--baseline-max`` in the same run (it took 263 s on 100k classes). Prints JSON.

    python benchmarks/csv_read.py --out benchmarks/results/csv_read.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "3757396"  # the last commit with the quadratic read_attribute_table (list.count)


def write_csv(path: Path, classes: int, attributes: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    values = rng.random((classes, attributes))
    with open(path, "w", encoding="utf-8") as f:
        f.write("class," + ",".join(f"attribute_{j}" for j in range(attributes)) + "\n")
        for i, row in enumerate(values):
            f.write(f"class_{i}," + ",".join(f"{v:.4f}" for v in row) + "\n")


def baseline_reader(ref: str):  # noqa: ANN201 - a function from another commit
    """``read_attribute_table`` as it was at ``ref`` (its module run inside the zeromamba package)."""
    source = subprocess.run(
        ["git", "show", f"{ref}:zeromamba/classes.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    spec = importlib.util.spec_from_loader("zeromamba._baseline_classes", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "zeromamba"
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{ref}:zeromamba/classes.py", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module.read_attribute_table


def best_of(rounds: int, fn, *args, **kwargs) -> tuple[float, float]:  # noqa: ANN001, ANN002, ANN003
    """The best wall-clock seconds of ``rounds`` calls, and the CPU seconds of that call (on a shared
    machine the CPU time varies less)."""
    best = (math.inf, math.inf)
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(*args, **kwargs)
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return round(best[0], 4), round(best[1], 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 100_000])
    parser.add_argument("--attributes", type=int, default=85, help="attribute columns (AwA2 has 85)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE_REF, help="git commit to compare with ('' for none)")
    parser.add_argument("--baseline-max", type=int, default=20_000, help="largest size the baseline is timed on")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    from zeromamba.classes import load_class_attributes, read_attribute_table

    old = baseline_reader(args.baseline) if args.baseline else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"classes_{n}.csv"
            write_csv(path, n, args.attributes)
            table = read_attribute_table(path)
            assert len(table.class_names) == n and table.values.shape == (n, args.attributes)
            wall, cpu = best_of(args.rounds, read_attribute_table, path)
            row = {
                "classes": n,
                "attributes": args.attributes,
                "file_mb": round(path.stat().st_size / 2**20, 2),
                "read_attribute_table_s": wall,
                "read_attribute_table_cpu_s": cpu,
                "load_class_attributes_s": best_of(
                    args.rounds, load_class_attributes, path, attribute_names=table.attribute_names
                )[0],
            }
            if old is not None and n <= args.baseline_max:
                row["baseline_read_attribute_table_s"], row["baseline_read_attribute_table_cpu_s"] = best_of(
                    1, old, path
                )
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    result = {
        "benchmark": "csv_read",
        "machine": machine_info(),
        "baseline": args.baseline or None,
        "rounds": args.rounds,
        "rows": rows,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
