"""Build ZeroMamba-small, run one image through it, and score classes described by attributes.

    python examples/quickstart.py

No download needed: random weights, so the scores are meaningless, but every step is the real one.
With published weights use ``zeromamba.from_pretrained("cub-gzsl")`` or
``zeromamba.load_official("CUB_bestGZSL.pth")`` instead of ``create_model``.
"""

import time

import torch

import zeromamba
from zeromamba.models import calibrated_stacking, class_scores

model = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).eval()
image = torch.randn(1, 3, 448, 448)  # a preprocessed image (resize to 448, ImageNet mean/std)

with torch.inference_mode():
    start = time.perf_counter()
    out = model(image)
    took = time.perf_counter() - start

print(f"forward at 448x448 on CPU: {took * 1000:.0f} ms (scan backend: {zeromamba.ops.resolve_backend('auto', image)})")
print("predicted attribute vector:", tuple(out.attributes.shape))
print("attention maps (one per attribute):", tuple(out.attention.shape))

# 5 classes described in the model's attribute space; classes 0-2 were "seen" in training
class_attributes = torch.nn.functional.normalize(torch.rand(5, 312), dim=1)
seen = torch.tensor([True, True, True, False, False])
scores = class_scores(out.attributes, class_attributes)
print("CZSL prediction (unseen classes only):", 3 + scores[:, 3:].argmax(1).item())
print("GZSL prediction (calibrated, gamma=0.3):", calibrated_stacking(scores, seen, 0.3).argmax(1).item())
