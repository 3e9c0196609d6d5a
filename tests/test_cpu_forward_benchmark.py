"""``benchmarks/cpu_forward.py``'s rounds: no model always goes first, and no timed pass is the first
of its batch size."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch
import torch.nn as nn

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _cpu_forward():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("cpu_forward")
    finally:
        sys.path.remove(str(BENCHMARKS))


class Recorder(nn.Module):
    """Appends ``(name, batch)`` to ``log`` on every call."""

    def __init__(self, name: str, log: list[tuple[str, int]]):
        super().__init__()
        self.name, self.log = name, log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append((self.name, x.shape[0]))
        return x


def test_models_take_turns_and_each_case_starts_untimed() -> None:
    cpu_forward = _cpu_forward()
    log: list[tuple[str, int]] = []
    names = ["a", "b", "c"]
    cases = [(8, 1, "float32"), (8, 4, "float32")]
    models = {(n, 8, "float32"): Recorder(n, log) for n in names}
    inputs = {c: torch.zeros(c[1], 3, 8, 8) for c in cases}
    ticks = iter(range(1000))
    timed = []
    for index in range(3):
        start = len(log)
        out = cpu_forward.run_round(models, names, cases, inputs, lambda: next(ticks) / 1000, index)
        calls = log[start:]
        order = names[index:] + names[:index]
        # per case: one untimed pass of the round's last model, then every model in the round's order
        for case_calls, (_, batch, _) in zip((calls[:4], calls[4:]), cases, strict=True):
            assert case_calls == [(order[-1], batch)] + [(n, batch) for n in order]
        assert set(out) == {"8_b1_float32", "8_b4_float32"}
        assert all(set(row) == set(names) for row in out.values())
        timed.append(order[0])
    assert timed == ["a", "b", "c"]  # each model first in one round
