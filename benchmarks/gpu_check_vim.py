"""CUDA check for the Vim family (to run on a GPU machine; not run by this project yet): parity
with the Vim authors' fixtures on every CUDA mixer backend present (``triton``; ``mamba`` when
mamba-ssm and causal-conv1d are installed; ``torch``), gradients where the backend has them, and
throughput at 448 against timm's resnet101. Prints (and writes) JSON.

    pip install mamba-ssm causal-conv1d --no-build-isolation   # compiles from source: start it first
    python benchmarks/gpu_check_vim.py --fixtures tests/fixtures/vim --out gpu_check_vim.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from machine import machine_info, write_report
from safetensors.torch import load_file

import zeromamba
from zeromamba.ops.mixer_cuda import causal_conv1d_available, mamba_ssm_available


def scaled(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float().cpu() - b.float()).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def parity(fixtures: Path, backends: list[str]) -> dict:
    out: dict = {}
    for folder in sorted(p for p in fixtures.iterdir() if (p / "meta.json").is_file()):
        cfg = json.loads((folder / "meta.json").read_text())["config"]
        e = load_file(folder / "expected.safetensors")
        size = tuple(cfg["img_size"]) if isinstance(cfg["img_size"], list) else cfg["img_size"]
        for backend in backends:
            path = folder / "vim_official_format.pth"
            m = zeromamba.load_official(path, img_size=size, stride=cfg["stride"], scan_backend=backend).cuda()
            with torch.inference_mode():
                tokens = m.forward_features(e["input0"].cuda())
                row = {
                    "tokens": scaled(tokens, e["input0.tokens"]),
                    "logits": scaled(m.forward_head(tokens), e["input0.logits"]),
                }
            if backend != "triton":  # forward-only kernels have no gradients
                m.train()
                F.cross_entropy(m(e["input0"].cuda()), e["train.labels"].cuda()).backward()
                row["grad_worst"] = max(scaled(p.grad, e["train.grad." + n]) for n, p in m.named_parameters())
            out[f"{folder.name}/{backend}"] = row
    return out


def throughput(batch: int, size: int, dtype: torch.dtype, rounds: int = 10) -> dict:
    models = {
        "resnet101": timm.create_model("resnet101"),
        "vim_small": zeromamba.create_model("vim_small", img_size=size),
        "zeromamba_vim_small": zeromamba.create_model("zeromamba_vim_small", img_size=size, num_attributes=312),
    }
    x = torch.randn(batch, 3, size, size, device="cuda")
    out = {}
    for name, m in models.items():
        m = m.cuda().eval()
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            for _ in range(3):
                m(x)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(rounds):
                m(x)
            torch.cuda.synchronize()
        out[name] = round(batch * rounds / (time.perf_counter() - t), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=Path("tests/fixtures/vim"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    have_cuda_extra = mamba_ssm_available() and causal_conv1d_available()
    backends = ["torch", "triton", "auto"] + (["mamba"] if have_cuda_extra else [])
    report = {
        "machine": machine_info(),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "mamba_ssm_and_causal_conv1d": have_cuda_extra,
        "parity": parity(args.fixtures, backends),
        f"images_per_s_{args.size}_batch{args.batch}_fp32": throughput(args.batch, args.size, torch.float32),
        f"images_per_s_{args.size}_batch{args.batch}_bf16": throughput(args.batch, args.size, torch.bfloat16),
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
