"""Two CPU processes under torchrun (gloo) train on the miniature dataset: both ranks must hold
the same parameters after training and compute the same metrics; only rank 0 writes the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..mini_xlsa17 import MINI_MODEL, build_mini_xlsa17, mini_train_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_ranks_agree_on_parameters_and_metrics(tmp_path: Path) -> None:
    mini = build_mini_xlsa17(tmp_path / "data")
    cfg = mini_train_config(
        mini,
        tmp_path / "run",
        # 32 wide: dt_rank 2 as in every published size (at 8 wide its size-1 dimension gives DDP
        # a stride mismatch of its own, which the real models never have)
        model=dict(MINI_MODEL, embed_dim=32),
        batch_size=4,  # 2 images per rank and step
        epochs=2,
        milestones=[1],
        selection="authors",  # evaluates every epoch: exercises the gathered predictions
    )
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    env = dict(os.environ, ZEROMAMBA_TEST_RANK_REPORT=str(tmp_path / "report"), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "zeromamba",
        "train",
        "--config",
        str(tmp_path / "cfg.json"),
    ]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=200)
    except subprocess.TimeoutExpired as e:  # pragma: no cover - a hang is a failure, not a stuck suite
        pytest.fail(f"torchrun did not finish in 200 s:\n{e.stdout}\n{e.stderr}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Grad strides do not match" not in proc.stderr  # DDP's buckets fit the depthwise grads
    r0, r1 = (json.loads((tmp_path / "report" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["world"], r1["world"], r0["rank"], r1["rank"]) == (2, 2, 0, 1)
    assert r0["param_sum"] == r1["param_sum"] and r0["param_abs_sum"] == r1["param_abs_sum"]
    assert r0["test"] == r1["test"]
    # only rank 0 logged: one line per epoch plus the final test line
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r.get("epoch") for r in log if r.get("phase")] == [1, 2]
    assert all(r["images"] == 18 for r in log if r.get("phase"))  # 18 trainval images, 9 per rank
    assert proc.stdout.count("model saved to") == 1
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
