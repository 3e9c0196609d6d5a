"""Our model against the authors' own outputs (tests/fixtures/official): the numeric truth."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import zeromamba
from zeromamba.models import ZeroMamba, calibrated_stacking, class_scores
from zeromamba.models.zeromamba import OFFICIAL_PREFIXES
from zeromamba.ops import fused_cpu_available

from ..helpers import fixture_dirs, scaled_error

OUTPUTS = {
    "features": "features",
    "logits": "logits",
    "attn": "attention",
    "local_attr": "local_attributes",
    "global_attr": "global_attributes",
    "fused_attr": "attributes",
}
FIXTURES = [p.name for p in fixture_dirs()]
# "fused_cpu" needs a C compiler; CI machines and this project's dev machines have one
BACKENDS = ["reference", "torch", "fused_cpu", "auto"]


def _inputs(expected: dict[str, torch.Tensor]) -> list[str]:
    return sorted(k for k in expected if k.startswith("input") and "." not in k)


def _official_name(ours: str) -> str:
    for official, mine in OFFICIAL_PREFIXES:
        if ours.startswith(mine):
            return official + ours[len(mine) :]
    raise AssertionError(f"no official name for {ours}")


@pytest.fixture(scope="module", params=FIXTURES)
def fixture(request):
    from ..helpers import fixtures_root

    root = fixtures_root() / request.param
    return root, load_file(root / "expected.safetensors"), json.loads((root / "meta.json").read_text())


def test_fused_cpu_kernel_builds_here():
    # the parity tests below run it; make its absence an explicit failure rather than a skip
    assert fused_cpu_available(), zeromamba.ops.fused_cpu.kernel_status()


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_matches_official(fixture, backend):
    root, expected, meta = fixture
    model = zeromamba.load_official(root / "zeromamba_official_format.pth", scan_backend=backend)
    assert isinstance(model, ZeroMamba) and not model.training
    cfg = meta["config"]
    if backend == "fused_cpu" and cfg["d_state"] != 1:
        with pytest.raises(RuntimeError, match="d_state=1 only"), torch.inference_mode():
            model(expected["input0"])
        return
    assert model.backbone.depths == tuple(cfg["depths"])
    att = expected["class_attributes"]
    seen = torch.zeros(att.shape[0], dtype=torch.bool)
    seen[meta["seen_classes"]] = True
    unseen_idx = (~seen).nonzero().flatten()
    for key in _inputs(expected):
        with torch.inference_mode():
            out = model(expected[key])
        for name, field in OUTPUTS.items():
            err = scaled_error(getattr(out, field), expected[f"{key}.{name}"])
            assert err < 1e-4, f"{backend} {key}.{name}: scaled error {err:.2e}"
        scores = class_scores(out.attributes, att)
        czsl = unseen_idx[scores[:, unseen_idx].argmax(1)]
        gzsl = calibrated_stacking(scores, seen, meta["gamma"]).argmax(1)
        assert torch.equal(czsl, expected[f"{key}.czsl_pred"])
        assert torch.equal(gzsl, expected[f"{key}.gzsl_pred"])


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_training_step_matches_official(fixture, backend):
    root, expected, meta = fixture
    model = zeromamba.load_official(root / "zeromamba_official_format.pth", scan_backend=backend).train()
    att = expected["class_attributes"]
    seen_att = att[: len(meta["seen_classes"])]
    labels = expected["train.labels"]
    fused = model(expected["input0"]).attributes
    loss = F.cross_entropy(fused @ seen_att.t(), labels) + 0.5 * F.l1_loss(fused, seen_att[labels])
    loss.backward()
    want = expected["train.loss"].reshape(())
    assert abs(loss.item() - want.item()) <= 1e-3 * abs(want.item())
    grads = {_official_name(n): p.grad for n, p in model.named_parameters()}
    checked = [k[len("train.grad.") :] for k in expected if k.startswith("train.grad.")]
    assert checked, "fixture has no gradients"
    for name in checked:
        got, ref = grads[name], expected[f"train.grad.{name}"]
        rel = ((got - ref).norm() / ref.norm().clamp_min(1e-12)).item()
        assert rel < 1e-3, f"{backend} grad {name}: relative error {rel:.2e}"


def test_vmamba_release_file_matches_backbone(fixture):
    root, expected, _ = fixture
    backbone = zeromamba.load_official(root / "vmamba_official_format.pth")
    assert isinstance(backbone, zeromamba.VMamba)
    for key in _inputs(expected):
        with torch.inference_mode():
            feats = backbone.forward_features(expected[key])
            logits = backbone.forward_head(feats)
        assert scaled_error(feats, expected[f"{key}.features"]) < 1e-4
        assert scaled_error(logits, expected[f"{key}.logits"]) < 1e-4


def test_checkpoint_without_clf_head_bias_loads_as_zero_bias(fixture, tmp_path):
    root, expected, _ = fixture
    sd = torch.load(root / "zeromamba_official_format.pth", weights_only=True)
    bias = sd.pop("clf_head.bias")
    assert bias.abs().max() > 0  # the fixture perturbs it, so dropping it must change the output
    torch.save(sd, tmp_path / "nobias.pth")
    model = zeromamba.load_official(tmp_path / "nobias.pth")
    assert torch.equal(model.global_head.bias, torch.zeros_like(bias))
    with torch.inference_mode():
        out = model(expected["input0"])
    assert scaled_error(out.global_attributes + bias, expected["input0.global_attr"]) < 1e-4


def test_vmamba_release_initialises_zeromamba_backbone(fixture):
    root, expected, meta = fixture
    cfg = meta["config"]
    model = ZeroMamba(
        num_attributes=cfg["n_attributes"],
        semantic_dim=cfg["semantic_dim"],
        embed_dim=cfg["embed_dim"],
        depths=cfg["depths"],
        d_state=cfg["d_state"],
        ssm_ratio=cfg["ssm_ratio"],
    )
    from zeromamba.models.zeromamba import checkpoint_filter_fn

    release = torch.load(root / "vmamba_official_format.pth", weights_only=True)
    model.load_state_dict(checkpoint_filter_fn(release, model))
    with torch.inference_mode():
        out = model.eval()(expected["input0"])
    assert scaled_error(out.features, expected["input0.features"]) < 1e-4
