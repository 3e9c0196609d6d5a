"""How closely bfloat16 inference on CPU follows float32: prints (and writes) JSON.

* The official parity fixtures (``tests/fixtures/official``): each model once in float32 and once
  with bfloat16 weights (what ``dtype="bfloat16"`` does on a CPU), on the fixtures' own inputs;
  the scaled error of the attributes (largest absolute difference over the float32 output's largest
  magnitude), of the backbone features, and whether the CZSL / GZSL predictions are the same.
* The shipped ``shapes-zsl`` model through ``zeromamba.from_pretrained``: the top-1 class of
  1,000 generated test images (seen and unseen classes, GZSL with the model's own gamma) in both
  precisions; agreement and each precision's accuracy.

    python benchmarks/bf16_agreement.py --out benchmarks/results/bf16_agreement_<date>.json
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
import torch
from machine import machine_info
from safetensors.torch import load_file

import zeromamba
from zeromamba.data.shapes import load_shapes
from zeromamba.fileio import write_text
from zeromamba.scoring import calibrated_stacking, class_scores

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official"


def scaled(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12)).item()


def fixtures() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for root in sorted(p for p in FIXTURES.iterdir() if (p / "meta.json").is_file()):
        expected = load_file(root / "expected.safetensors")
        meta = json.loads((root / "meta.json").read_text())
        fp32 = zeromamba.load_official(root / "zeromamba_official_format.pth")
        bf16 = zeromamba.load_official(root / "zeromamba_official_format.pth").to(torch.bfloat16)
        att = expected["class_attributes"]
        seen = torch.zeros(att.shape[0], dtype=torch.bool)
        seen[meta["seen_classes"]] = True
        for key in sorted(k for k in expected if k.startswith("input") and "." not in k):
            with torch.inference_mode():
                a, b = fp32(expected[key]), bf16(expected[key].to(torch.bfloat16))
            sa, sb = class_scores(a.attributes, att), class_scores(b.attributes.float(), att)
            unseen = (~seen).nonzero().flatten()
            out[f"{root.name}/{key}"] = {
                "attributes_scaled_error": round(scaled(b.attributes, a.attributes), 5),
                "features_scaled_error": round(scaled(b.features, a.features), 5),
                "float32_vs_official": scaled(a.attributes, expected[f"{key}.fused_attr"]),
                "czsl_same": bool(torch.equal(sa[:, unseen].argmax(1), sb[:, unseen].argmax(1))),
                "gzsl_same": bool(
                    torch.equal(
                        calibrated_stacking(sa, seen, meta["gamma"]).argmax(1),
                        calibrated_stacking(sb, seen, meta["gamma"]).argmax(1),
                    )
                ),
            }
    return out


def shapes(n_images: int, seed: int) -> dict[str, object]:
    data = load_shapes(seed=seed)
    test = np.concatenate([data.splits["test_seen"], data.splits["test_unseen"]])
    picked = np.random.default_rng(seed).permutation(test)[:n_images]
    images = [data.render(int(i)) for i in picked]
    labels = data.labels[picked]
    top1 = {}
    for dtype in ("float32", "bfloat16"):
        predictor = zeromamba.from_pretrained("shapes-zsl", dtype=dtype, device="cpu")
        results = predictor.classify(images, top_k=1)
        top1[dtype] = np.array([r.indices[0] for r in results])
    return {
        "images": int(len(picked)),
        "seed": seed,
        "top1_agreement": float((top1["float32"] == top1["bfloat16"]).mean()),
        "accuracy_float32": float((top1["float32"] == labels).mean()),
        "accuracy_bfloat16": float((top1["bfloat16"] == labels).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1, help="the generated images' seed (the model was trained on 0)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    fx = fixtures()
    report = {
        "benchmark": "bf16_agreement",
        "machine": machine_info(),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "bf16_native": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "fixtures": fx,
        "fixtures_max_attributes_scaled_error": max(r["attributes_scaled_error"] for r in fx.values()),
        "fixtures_predictions_same": all(r["czsl_same"] and r["gzsl_same"] for r in fx.values()),
        "shapes": shapes(args.images, args.seed),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
