"""The Mamba mixer's Triton kernels, run by Triton's CPU interpreter (no GPU needed).

``TRITON_INTERPRET=1`` must be set before a kernel is defined, so the kernels run in a subprocess
and are compared there with the plain reference. The GPU run itself is the ``cuda``-marked test in
test_mixer_ops.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

SCRIPT = r"""
import json, torch
from zeromamba.ops import mixer_causal_conv1d, mixer_selective_scan
g = torch.Generator().manual_seed(0)
errors = {}
for batch, L, E, N in [(2, 13, 20, 16), (1, 9, 7, 4), (1, 1, 5, 3), (1, 40, 70, 1), (1, 6, 3, 64)]:
    xz = torch.randn(batch, L, 2 * E, generator=g)
    bc = torch.randn(batch, L, 2 * N + 2, generator=g)
    p = dict(x=xz[..., :E], dt=torch.randn(batch, L, E, generator=g), A=-torch.rand(E, N, generator=g) * 2,
             B=bc[..., 2:2 + N], C=bc[..., 2 + N:], D=torch.randn(E, generator=g), z=xz[..., E:],
             dt_bias=torch.linspace(-30, 30, E))
    w = torch.randn(E, 1, 4, generator=g)
    for reverse in (False, True):
        key = f"{batch}x{L}x{E}x{N}-{'bwd' if reverse else 'fwd'}"
        ref = mixer_selective_scan(**p, reverse=reverse, backend="reference")
        out = mixer_selective_scan(**p, reverse=reverse, backend="triton")
        errors["scan " + key] = ((out - ref).abs().max() / ref.abs().max()).item()
        bare = {**p, "z": None, "dt_bias": None, "dt": p["dt"].abs()}
        ref = mixer_selective_scan(**bare, softplus=False, reverse=reverse, backend="reference")
        out = mixer_selective_scan(**bare, softplus=False, reverse=reverse, backend="triton")
        errors["bare scan " + key] = ((out - ref).abs().max() / ref.abs().max()).item()
        ref = mixer_causal_conv1d(p["x"], w, p["D"], reverse=reverse, backend="reference")
        out = mixer_causal_conv1d(p["x"], w, p["D"], reverse=reverse, backend="triton")
        errors["conv " + key] = ((out - ref).abs().max() / ref.abs().max()).item()
print(json.dumps(errors))
"""


@pytest.mark.slow
def test_triton_mixer_kernels_match_reference_in_interpreter() -> None:
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    errors = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(errors) == 30
    for case, err in errors.items():
        assert err < 1e-5, (case, err)
