"""The model card (``README.md`` of a model folder): Hub YAML front matter and a description."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from ..architectures import ZEROMAMBA_ARCHITECTURES
from ..zoo import VMAMBA_CODE_URL, ZEROMAMBA_CODE_URL, PretrainedVariant

__all__ = ["MODEL_CARD_TEMPLATE", "render_model_card"]

MODEL_CARD_TEMPLATE = """---
license: $license_id
$license_extra
library_name: zeromamba
pipeline_tag: $pipeline_tag
tags:
- zeromamba
- vmamba
- mamba
- state-space-model
- timm
- $task_tag$datasets_yaml
---

# $title

$description

## What this is

$what

## How to use it

```python
$usage
```

Preprocessing, $height x $width ($interpolation interpolation, crop_pct $crop_pct): $preprocessing; ImageNet
mean/std normalisation.$framing `zeromamba.from_pretrained`, `zeromamba.Predictor(model)` and the model's
`pretrained_cfg` all use it.

## $metrics_heading

$metrics

## Where the weights come from

$provenance

## Licence

$license_text

## Citation

```bibtex
@inproceedings{hou2025zeromamba,
  title     = {ZeroMamba: Exploring Visual State Space Model for Zero-Shot Learning},
  author    = {Hou, Wenjin and Fu, Dingjie and Li, Kun and Chen, Shiming and Fan, Hehe and Yang, Yi},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {39},
  number    = {4},
  pages     = {3527--3535},
  year      = {2025}
}
@article{liu2024vmamba,
  title   = {VMamba: Visual State Space Model},
  author  = {Liu, Yue and Tian, Yunjie and Zhao, Yuzhong and Yu, Hongtian and Xie, Lingxi and Wang, Yaowei and
             Ye, Qixiang and Liu, Yunfan},
  journal = {arXiv preprint arXiv:2401.10166},
  year    = {2024}
}
```
"""

_METRIC_NAMES = {
    "czsl_acc": "CZSL accuracy (mean per-class top-1, unseen classes)",
    "gzsl_u": "GZSL U (unseen classes)",
    "gzsl_s": "GZSL S (seen classes)",
    "gzsl_h": "GZSL H (harmonic mean)",
    "imagenet_top1": "ImageNet-1k top-1 (224x224)",
}
_DATASET_IDS = {"CUB": "cub-200-2011", "SUN": "sun-attribute", "AWA2": "awa2", "ImageNet-1k": "imagenet-1k"}


def _zero_shot_section(config: Mapping[str, Any], dataset: str, name: str, timm_name: str) -> dict[str, str]:
    args = config.get("model_args", {})
    n_cls = len(config.get("class_names") or []) or (config.get("class_attributes") or {}).get("shape", [0])[0]
    n_seen = len(config.get("seen_classes") or [])
    what = (
        "A zero-shot image classifier (ZeroMamba, Hou et al., AAAI 2025): a VMamba v2 backbone with three "
        "semantic heads (SLP attention per attribute, GRL, SeF fusion) that predicts a vector of "
        f"{args.get('num_attributes')} class attributes per image. A class scores the dot product of its "
        f"attribute row with that vector, so any class described in the same attribute space can be "
        "recognised. "
        + (
            f"The folder carries the {dataset} class-attribute matrix ({n_cls} classes, {n_seen} seen in "
            f"training) and the calibrated-stacking gamma {config.get('gamma')} used for generalised ZSL."
            if n_cls
            else "The folder carries no class-attribute matrix: pass your classes' attribute vectors to classify."
        )
    )
    usage = (
        "import zeromamba\n"
        f'predictor = zeromamba.from_pretrained("{name}")\n'
        'print(predictor.classify("image.jpg", top_k=5))\n\n'
        "import timm  # the weights alone, through timm\n"
        f'model = timm.create_model("{timm_name}", pretrained=True)'
    )
    return dict(what=what, usage=usage, pipeline_tag="zero-shot-image-classification", task_tag="zero-shot-learning")


def _backbone_section(timm_name: str, repo: str) -> dict[str, str]:
    what = (
        "A VMamba v2 ImageNet-1k classifier (Liu et al., 2024), the backbone ZeroMamba is fine-tuned from. "
        "Useful as a timm backbone (`features_only=True`) or an ImageNet classifier."
    )
    usage = (
        "import timm, zeromamba  # importing zeromamba registers the architectures with timm\n"
        f'model = timm.create_model("{timm_name}", pretrained=True)\n'
        f'model = timm.create_model("hf-hub:{repo}", pretrained=True)  # the same weights'
    )
    return dict(what=what, usage=usage, pipeline_tag="image-classification", task_tag="image-classification")


_CROP_MODES = {
    "squash": "the whole image resized to the frame (aspect ratio not kept)",
    "center": "the shorter side resized to the frame, then the centre crop",
    "border": "the whole image fitted into the frame with its aspect ratio kept, padded with the mean colour "
    "(timm's `crop_mode=\"border\"`: timm's `create_transform` builds the same transform)",
    "letterbox": "the whole image fitted into the frame with its aspect ratio kept, padded with the colour of its "
    "border pixels (zeromamba's own mode)",
}


def _preprocessing(config: Mapping[str, Any]) -> dict[str, str]:
    mode = str(config.get("pretrained_cfg", {}).get("crop_mode", "squash"))
    extent = config.get("object_extent")
    framing = ""
    if extent:
        framing = (
            f" Before that, a lone object on a plain background smaller than {extent[0]} of the image (half its "
            f"bounding box's longer side over the image's longer side) is framed so that it has {extent[1]}, the "
            "size it had in training (zeromamba's `object_extent`; timm's transforms have no such step)."
        )
    return dict(preprocessing=_CROP_MODES.get(mode, f"crop mode `{mode}`"), framing=framing)


def _provenance_sections(variant: PretrainedVariant | None, dataset: str) -> dict[str, str]:
    if variant is not None and variant.measured_metrics:
        rows = "\n".join(f"| {_METRIC_NAMES.get(k, k)} | {v:.1f} |" for k, v in variant.measured_metrics.items())
        heading = "Results (measured by the zeromamba project)"
        metrics = (
            f"| metric (%) | value |\n|---|---|\n{rows}\n\n"
            f"Measured by the zeromamba project {variant.measured_metrics_source}."
        )
    elif variant is not None and variant.authors_metrics:
        rows = "\n".join(f"| {_METRIC_NAMES.get(k, k)} | {v:.1f} |" for k, v in variant.authors_metrics.items())
        heading = "Reported results (the authors' figures)"
        metrics = (
            f"| metric (%) | value |\n|---|---|\n{rows}\n\n"
            f"These are the authors' figures, {variant.authors_metrics_source}. This project has not re-measured them."
        )
    else:
        heading, metrics = "Results", "No results are attached to this model."
    if variant is not None and variant.source_file:
        provenance = (
            f"Trained by {variant.trained_by}; converted with zeromamba from the authors' release file "
            f"`{variant.source_file}` ({variant.source_url}) by `zeromamba convert`: parameters renamed to "
            "zeromamba's names and stored as safetensors; values unchanged. The converter is tested to reproduce "
            "the official implementation's outputs."
        )
    elif variant is not None:
        provenance = f"Trained by {variant.trained_by} on the {dataset} dataset, not converted from other weights."
    else:
        provenance = "Saved with `zeromamba` (`save_pretrained`); who trained the weights is not recorded."
    return dict(metrics_heading=heading, metrics=metrics, provenance=provenance)


def _licence_sections(lic: str, note: str, is_zsl: bool) -> dict[str, str]:
    if lic in ("unknown", "other", ""):
        license_id = "other"
        license_extra = "license_name: unknown\nlicense_link: " + (ZEROMAMBA_CODE_URL if is_zsl else VMAMBA_CODE_URL)
    else:
        license_id, license_extra = lic, ""
    text = (note or f"Licence: {lic}.") + " The zeromamba code is MIT-licensed."
    return dict(license_id=license_id, license_extra=license_extra, license_text=text)


def render_model_card(config: Mapping[str, Any], variant: PretrainedVariant | None = None) -> str:
    """The model card (``README.md``) for a folder's config, from :data:`MODEL_CARD_TEMPLATE`."""
    is_zsl = config.get("architecture") in ZEROMAMBA_ARCHITECTURES
    pc = config.get("pretrained_cfg", {})
    known = config.get("dataset") or (variant.dataset if variant else None)
    dataset = str(known) if known else "an unrecorded dataset"
    if variant is not None:
        title = f"ZeroMamba {variant.name}" if is_zsl else f"VMamba v2 {variant.name.split('-', 1)[-1]} (ImageNet-1k)"
        description = variant.description.rstrip(".") + "."
        repo = variant.repo_id
    else:
        title = (f"ZeroMamba ({dataset})" if known else "ZeroMamba") if is_zsl else "VMamba v2 backbone"
        description = f"A {config.get('architecture')} model saved with zeromamba."
        repo = "OWNER/REPO"
    if is_zsl:
        timm_name = variant.timm_name if variant is not None and variant.is_local else "hf-hub:" + repo
        section = _zero_shot_section(config, dataset, variant.name if variant else "hf-hub:" + repo, timm_name)
    else:
        section = _backbone_section(variant.timm_name if variant else "vmamba_small", repo)
    lic = variant.license if variant is not None else str(pc.get("license") or "unknown")
    note = variant.license_note if variant is not None else ""
    text = string.Template(MODEL_CARD_TEMPLATE).substitute(
        **section,
        **_provenance_sections(variant, dataset),
        **_licence_sections(lic, note, is_zsl),
        datasets_yaml=f"\ndatasets:\n- {_DATASET_IDS.get(dataset, dataset.lower())}" if known else "",
        title=title,
        description=description,
        height=pc.get("input_size", [3, 0, 0])[1],
        width=pc.get("input_size", [3, 0, 0])[2],
        interpolation=pc.get("interpolation", "bilinear"),
        **_preprocessing(config),
        crop_pct=pc.get("crop_pct", 1.0),
    )
    return re.sub(r"\n{2,}(?=library_name)", "\n", text)  # drop the blank line an empty license_extra leaves
