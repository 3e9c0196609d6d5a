"""End-to-end CUDA check: parity with the official fixtures on the GPU (outputs, and gradients with
every backend, Triton's own backward included), fast-vs-reference scan on random inputs,
throughput at 448 against timm's resnet101, and one training step at 448 batch 16 bf16 (PyTorch
scan vs Triton vs resnet101). Prints (and writes) JSON.

    python benchmarks/gpu_check.py --fixtures tests/fixtures/official --out gpu_check.json
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
from zeromamba.models.zeromamba import OFFICIAL_PREFIXES
from zeromamba.ops import cross_selective_scan, mamba_ssm_available, resolve_backend
from zeromamba.scoring import calibrated_stacking, class_scores


def scaled(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float().cpu() - b.float()).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def official_name(n: str) -> str:
    for off, ours in OFFICIAL_PREFIXES:
        if n.startswith(ours):
            return off + n[len(ours) :]
    return n


def parity(fixtures: Path, dev: str) -> dict:
    out = {}
    for d in sorted(p for p in fixtures.iterdir() if p.name.startswith("parity_")):
        e = load_file(d / "expected.safetensors")
        meta = json.loads((d / "meta.json").read_text())
        res = {}
        for backend in ["auto", "torch", "triton"]:
            if backend == "triton" and meta["config"]["d_state"] != 1:
                continue
            m = zeromamba.load_official(d / "zeromamba_official_format.pth", scan_backend=backend).to(dev)
            worst, preds_ok = 0.0, True
            att = e["class_attributes"].to(dev)
            seen = torch.zeros(att.shape[0], dtype=torch.bool, device=dev)
            seen[meta["seen_classes"]] = True
            unseen = (~seen).nonzero().flatten()
            for k in sorted(k for k in e if k.startswith("input") and "." not in k):
                with torch.inference_mode():
                    o = m(e[k].to(dev))
                for name, field in [
                    ("features", "features"),
                    ("logits", "logits"),
                    ("attn", "attention"),
                    ("local_attr", "local_attributes"),
                    ("global_attr", "global_attributes"),
                    ("fused_attr", "attributes"),
                ]:
                    worst = max(worst, scaled(getattr(o, field), e[f"{k}.{name}"]))
                s = class_scores(o.attributes, att)
                czsl = unseen[s[:, unseen].argmax(1)].cpu()
                gzsl = calibrated_stacking(s, seen, meta["gamma"]).argmax(1).cpu()
                preds_ok &= torch.equal(czsl, e[f"{k}.czsl_pred"]) and torch.equal(gzsl, e[f"{k}.gzsl_pred"])
            m.train()  # the triton backend trains through its own backward kernel
            seen_att = att[: len(meta["seen_classes"])]
            y = e["train.labels"].to(dev)
            fused = m(e["input0"].to(dev)).attributes
            loss = F.cross_entropy(fused @ seen_att.t(), y) + 0.5 * F.l1_loss(fused, seen_att[y])
            loss.backward()
            grads = {official_name(n): p.grad for n, p in m.named_parameters()}
            gerr = max(
                ((grads[n[11:]].cpu() - e[n]).norm() / e[n].norm()).item() for n in e if n.startswith("train.grad.")
            )
            res[backend] = dict(
                max_scaled_output_error=worst,
                predictions_exact=preds_ok,
                loss_rel_error=abs(loss.item() - e["train.loss"].item()) / abs(e["train.loss"].item()),
                max_grad_rel_error=gerr,
                resolved_backend=resolve_backend(backend, e["input0"].to(dev), meta["config"]["d_state"]),
            )
        out[d.name] = res
    return out


def random_scan(dev: str) -> dict:
    res = {}
    g = torch.Generator().manual_seed(0)
    for B, H, W, D, N, R, dtype in [
        (2, 28, 28, 64, 1, 4, torch.float32),
        (1, 15, 22, 32, 4, 2, torch.float32),
        (2, 14, 14, 64, 1, 4, torch.bfloat16),
    ]:
        p = dict(
            x=torch.randn(B, H, W, D, generator=g),
            x_proj_weight=torch.randn(4, R + 2 * N, D, generator=g) * 0.3,
            dt_projs_weight=torch.randn(4, D, R, generator=g) * 0.3,
            dt_projs_bias=torch.randn(4, D, generator=g) * 0.5,
            A_logs=torch.randn(4 * D, N, generator=g) * 0.5,
            Ds=torch.randn(4 * D, generator=g),
        )
        p = {k: v.to(dev, dtype) for k, v in p.items()}
        a = {k: v.clone().requires_grad_() for k, v in p.items()}
        b = {k: v.clone().requires_grad_() for k, v in p.items()}
        ra = cross_selective_scan(**a, backend="reference")
        rb = cross_selective_scan(**b, backend="torch")
        ga = torch.autograd.grad(ra.square().sum(), list(a.values()))
        gb = torch.autograd.grad(rb.square().sum(), list(b.values()))
        row = dict(out=scaled(rb, ra.cpu()), grad=max(scaled(x, y.cpu()) for x, y in zip(gb, ga)))
        if N == 1:
            with torch.no_grad():
                row["triton_out"] = scaled(cross_selective_scan(**p, backend="triton"), ra.detach().cpu())
            c = {k: v.clone().requires_grad_() for k, v in p.items()}
            rc = cross_selective_scan(**c, backend="triton")
            gc = torch.autograd.grad(rc.square().sum(), list(c.values()))
            row["triton_train_out"] = scaled(rc, ra.detach().cpu())
            row["triton_grad"] = max(scaled(x, y.cpu()) for x, y in zip(gc, ga))
        res[f"{B}x{H}x{W}x{D}_N{N}_{str(dtype)[6:]}"] = row
    return res


def timed(fn, n: int) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(n):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def throughput(dev: str) -> dict:
    res = {}
    zm = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).to(dev).eval()
    r101 = timm.create_model("resnet101").to(dev).eval()
    for batch in (1, 32):
        x = torch.randn(batch, 3, 448, 448, device=dev)
        row = {}
        for name, m, backend in (
            ("zeromamba_small", zm, "auto"),
            ("zeromamba_small_torchscan", zm, "torch"),
            ("resnet101", r101, None),
        ):
            if backend:
                m.set_scan_backend(backend)
            for prec in ("fp32", "bf16"):

                def run(m=m, prec=prec, x=x):
                    with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=prec == "bf16"):
                        m(x)

                ms = timed(run, 10 if batch == 1 else 5)
                row[f"{name}_{prec}_ms"] = round(ms, 2)
                row[f"{name}_{prec}_img_per_s"] = round(batch * 1000 / ms, 1)
        zm.set_scan_backend("auto")
        row["zm_vs_r101_bf16"] = round(row["zeromamba_small_bf16_ms"] / row["resnet101_bf16_ms"], 2)
        row["auto_backend"] = resolve_backend("auto", x, 1, False)
        res[f"batch{batch}"] = row
    return res


def train_step(dev: str, batch: int = 16, steps: int = 5) -> dict:
    """One training step (forward, backward, SGD update) at 448 in bf16 autocast: ZeroMamba-S with
    the PyTorch scan and with the Triton kernels, and resnet101, timed in the same run."""
    res = {}
    x = torch.randn(batch, 3, 448, 448, device=dev)
    target = torch.randn(batch, 312, device=dev)
    zm = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).to(dev).train()
    r101 = timm.create_model("resnet101", num_classes=312).to(dev).train()
    for name, model, backend in (("zeromamba_small_torch", zm, "torch"), ("zeromamba_small_triton", zm, "triton"),
                                 ("resnet101", r101, None)):  # fmt: skip
        if backend:
            model.set_scan_backend(backend)
        opt = torch.optim.SGD(model.parameters(), lr=1e-4)

        def step(model=model, opt=opt):
            with torch.autocast("cuda", torch.bfloat16):
                out = model(x)
                pred = out.attributes if hasattr(out, "attributes") else out
                loss = F.mse_loss(pred.float(), target)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        res[f"{name}_ms"] = round(timed(step, steps), 1)
        res[f"{name}_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        torch.cuda.reset_peak_memory_stats()
    res["triton_vs_torch"] = round(res["zeromamba_small_triton_ms"] / res["zeromamba_small_torch_ms"], 2)
    res["triton_vs_resnet101"] = round(res["zeromamba_small_triton_ms"] / res["resnet101_ms"], 2)
    res["auto_backend_training"] = resolve_backend("auto", x.new_zeros(1, 2, 2, 8), 1, True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False  # parity runs in true float32
    torch.backends.cudnn.allow_tf32 = False
    report = dict(
        machine=machine_info(),
        device=torch.cuda.get_device_name(0),
        torch=torch.__version__,
        timm=timm.__version__,
        mamba_ssm_available=mamba_ssm_available(),
    )
    t = time.time()
    report["parity"] = parity(args.fixtures, dev)
    report["random_scan_torch_vs_reference"] = random_scan(dev)
    report["checks_s"] = round(time.time() - t, 1)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    report["throughput_448"] = throughput(dev)
    report["train_step_448_batch16_bf16"] = train_step(dev)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
