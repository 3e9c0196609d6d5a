"""The fused CPU kernel's build and fallback behaviour (each case in a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from zeromamba.ops.cpu_build import openmp_runtime

PROBE = (
    "import torch; from zeromamba.ops import resolve_backend, kernel_status; "
    "print(resolve_backend('auto', torch.zeros(1, 2, 2, 4)), '|', kernel_status())"
)


def _probe(tmp_path, **env) -> tuple[str, str]:
    full = dict(os.environ, TMPDIR=str(tmp_path), **env)
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=full, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    backend, status = (part.strip() for part in res.stdout.strip().splitlines()[-1].split("|", 1))
    return backend, status


def test_builds_into_the_cache_dir(tmp_path):
    cache = tmp_path / "cache"
    backend, status = _probe(tmp_path, ZEROMAMBA_CACHE_DIR=str(cache))
    assert (backend, status) == ("fused_cpu", "ok")
    built = list((cache / "kernels").glob("ss2d_scan_*.so"))
    assert len(built) == 1 and built[0].stat().st_size > 0
    assert not [p for p in (cache / "kernels").iterdir() if p.is_dir()]  # no half-built leftovers


def test_unwritable_cache_falls_back_to_a_temp_dir(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    backend, status = _probe(tmp_path, ZEROMAMBA_CACHE_DIR=str(blocker))
    assert (backend, status) == ("fused_cpu", "ok")
    assert not list(tmp_path.glob("zeromamba-kernels-*"))  # the process's private build folder went with it


@pytest.mark.slow
def test_disabled_or_no_compiler_uses_the_torch_path(tmp_path):
    backend, status = _probe(tmp_path, ZEROMAMBA_DISABLE_CPU_KERNEL="1")
    assert backend == "torch" and "disabled" in status
    no_cc = dict(CC="/nonexistent/cc", PATH="/nonexistent")
    backend, status = _probe(tmp_path, ZEROMAMBA_CACHE_DIR=str(tmp_path / "c"), **no_cc)
    assert backend == "torch" and "compiler" in status


def test_forked_child_gets_a_fresh_thread_pool():
    # the kernel's worker threads do not survive fork(); a child must not queue work on them
    script = (
        "import os, torch\n"
        "from zeromamba.ops import fused_cpu\n"
        "torch.set_num_threads(2)\n"
        "assert fused_cpu._threads().submit(int, '1').result(timeout=10) == 1\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = fused_cpu._threads().submit(int, '2').result(timeout=10) == 2\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "raise SystemExit(os.waitstatus_to_exitcode(status))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_first_call_in_a_fresh_process_is_right():
    # the kernel is built and self-checked lazily, inside the first call; that check must not
    # clobber the call's own inputs (both use the thread's scratch buffer)
    script = textwrap.dedent(
        """
        import torch
        from zeromamba.ops import cross_selective_scan
        from zeromamba.ops.fused_cpu import cross_scan_fused_cpu
        g = torch.Generator().manual_seed(0)
        B, H, W, D, R = 2, 5, 7, 6, 2
        p = dict(
            x=torch.randn(B, H, W, D, generator=g),
            x_proj_weight=torch.randn(4, R + 2, D, generator=g) * 0.5,
            dt_projs_weight=torch.randn(4, D, R, generator=g) * 0.5,
            dt_projs_bias=torch.randn(4, D, generator=g),
            A_logs=torch.randn(4 * D, 1, generator=g) * 0.5,
            Ds=torch.randn(4 * D, generator=g),
        )
        with torch.inference_mode():
            # an earlier call of the torch path leaves a large scratch buffer behind
            big = {k: torch.cat([v] * 32) if k == "x" else v for k, v in p.items()}
            cross_selective_scan(**big, backend="torch")
            out = cross_scan_fused_cpu(**p)
        ref = cross_selective_scan(**p, backend="reference")
        err = ((out - ref).abs().max() / ref.abs().max()).item()
        assert err < 1e-5, err
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


THREADS_PROBE = textwrap.dedent(
    """
    import torch
    from zeromamba.ops import kernel_build
    from zeromamba.ops.fused_cpu import cross_scan_fused_cpu
    g = torch.Generator().manual_seed(0)
    B, H, W, D, R = 3, 6, 9, 72, 3  # 3 images x 3 channel tiles (the last one partial)
    p = [torch.randn(B, H, W, D, generator=g), torch.randn(4, R + 2, D, generator=g) * 0.3,
         torch.randn(4, D, R, generator=g) * 0.3, torch.randn(4, D, generator=g) * 0.3,
         torch.randn(4 * D, 1, generator=g) * 0.5, torch.randn(4 * D, generator=g)]
    outs = []
    with torch.inference_mode():
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            outs.append(cross_scan_fused_cpu(*p))
    same = all(torch.equal(o, outs[0]) for o in outs)
    print(kernel_build(), same)
    """
)


@pytest.mark.parametrize("openmp", ["1", "0"])
def test_threads_split_the_work_without_changing_it(tmp_path, openmp):
    # the OpenMP build runs on PyTorch's own threads, the other one on a pool of Python threads;
    # either way each thread owns whole (image, channel tile) items, so results are bit-identical
    env = dict(os.environ, ZEROMAMBA_CACHE_DIR=str(tmp_path), ZEROMAMBA_CPU_KERNEL_OPENMP=openmp)
    res = subprocess.run([sys.executable, "-c", THREADS_PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    build, same = res.stdout.split()
    # an OpenMP build wherever PyTorch runs on an OpenMP runtime (Linux wheels: libgomp)
    want = "openmp" if openmp == "1" and openmp_runtime() is not None else "native"
    assert build == want and same == "True"
