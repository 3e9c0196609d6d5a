"""The model zoo: every named pretrained variant zeromamba knows, in one registry.

Each :class:`PretrainedVariant` says what the weights are (architecture and its arguments, the
task, preprocessing, gamma), where they live (a Hugging Face Hub repository, or a folder inside
the installed package for small embedded variants), where they come from (the authors' release
file they were converted from, and its licence) and what the *authors* report for them (the
authors' published figures, not numbers this project measured), or for weights this project
trained itself, who trained them and what the project measured.

Repository ids are ``{namespace}/{repo_name}``. The namespace defaults to
:data:`DEFAULT_NAMESPACE` and is overridden by the environment variable
``ZEROMAMBA_HUB_NAMESPACE``, read each time a repository id is asked for.

A leaf table: it imports neither torch nor timm nor any other layer of the package, so the model
files read their timm pretrained tags from it (:func:`timm_pretrained_cfgs`) and ``zeromamba list``
needs nothing heavy. :meth:`PretrainedVariant.availability` says, without any network access,
whether a variant loads now: shipped in the package, in the Hugging Face cache, downloadable, or
known not to be published (then :meth:`PretrainedVariant.convert_instructions` says what to do).
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from .architectures import VIM_ARCHITECTURES, VMAMBA_ARCHITECTURES, ZEROMAMBA_ARCHITECTURES
from .errors import UnknownModelError
from .pretrained_variant import (
    AVAILABILITY,
    DEFAULT_ENDPOINT,
    DEFAULT_NAMESPACE,
    HUB_FORMATS,
    NAMESPACE_ENV,
    TASKS,
    PretrainedVariant,
    convert_instructions,
    hub_namespace,
)
from .terminal import terminal_safe

__all__ = [
    "AVAILABILITY",
    "DEFAULT_ENDPOINT",
    "DEFAULT_NAMESPACE",
    "HUB_FORMATS",
    "NAMESPACE_ENV",
    "TASKS",
    "PretrainedVariant",
    "VariantList",
    "convert_instructions",
    "hub_namespace",
    "list_pretrained",
    "get_variant",
    "register_variant",
    "timm_pretrained_cfgs",
    "timm_hub_overlay",
    "timm_model_args",
    "variant_for_tag",
]

PAPER = "W. Hou, D. Fu, K. Li, S. Chen, H. Fan, Y. Yang, ZeroMamba: Exploring Visual State Space Model for Zero-Shot Learning, AAAI 2025"  # noqa: E501
PAPER_URL = "https://arxiv.org/abs/2408.14868"
ZEROMAMBA_CODE_URL = "https://github.com/DingjieFu/ZeroMamba"
ZEROMAMBA_WEIGHTS_URL = "https://drive.google.com/drive/folders/1VtmU_HqvjtdyNRyp0ou3RJwB3-CmdXGv"
VMAMBA_CODE_URL = "https://github.com/MzeroMiko/VMamba"
VMAMBA_RELEASES_URL = "https://github.com/MzeroMiko/VMamba/releases"
VIM_CODE_URL = "https://github.com/hustvl/Vim"


# --- the registry ---------------------------------------------------------------------------

_REGISTRY: dict[str, PretrainedVariant] = {}


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_variant(variant: PretrainedVariant, *, overwrite: bool = False) -> PretrainedVariant:
    """Add a variant to the zoo (used for the built-in list and for embedded variants)."""
    key = _normalise(variant.name)
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"a pretrained variant named {variant.name!r} is already registered")
    _REGISTRY[key] = variant
    return variant


class VariantList(list):
    """A list of :class:`PretrainedVariant` that prints as a table, with where each loads from."""

    def table(self, cache_dir: str | os.PathLike | None = None) -> str:
        """The table ``zeromamba list`` prints: name, timm name, task, dataset, gamma, the metrics and
        who measured them (``authors``: as the authors report them; ``zeromamba``: measured by this
        project), and availability (see :data:`AVAILABILITY`; only ``shipped`` and ``cached`` load
        without the network)."""
        rows = [("name", "timm name", "task", "dataset", "gamma", "metrics %", "by", "available")]
        for v in self:
            own = bool(v.measured_metrics)
            values = v.measured_metrics if own else v.authors_metrics
            metrics = ", ".join(f"{k}={x:.1f}" for k, x in values.items())
            by = ("zeromamba" if own else "authors") if values else ""
            gamma = "" if v.gamma is None else f"{v.gamma:g}"
            cells = (v.name, v.timm_name, v.task, v.dataset, gamma, metrics, by, v.availability(cache_dir))
            rows.append(tuple(terminal_safe(c) for c in cells))  # a registered variant's names are anyone's
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        shown = {r[-1] for r in rows[1:]}
        lines += [""] + [f"{k}: {AVAILABILITY[k]}" for k in AVAILABILITY if k in shown]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__


def list_pretrained(task: str | None = None, dataset: str | None = None) -> VariantList:
    """Every pretrained variant in the zoo, optionally only one ``task`` or ``dataset``; a list
    that prints as a table (``print(zeromamba.list_pretrained())``).

    Example: ``[v.name for v in zeromamba.list_pretrained(task="gzsl")]``.
    """
    out = list(_REGISTRY.values())
    if task is not None:
        out = [v for v in out if v.task == task.lower()]
    if dataset is not None:
        out = [v for v in out if v.dataset.lower() == dataset.lower()]
    return VariantList(out)


def _known_names() -> list[str]:
    names = list(_REGISTRY)
    names += [v.timm_name for v in _REGISTRY.values()]
    return names


def get_variant(name: str) -> PretrainedVariant:
    """Look a variant up by zoo name (``cub-gzsl``, ``cub_gzsl``) or timm name (``zeromamba_small.cub_gzsl``).

    Raises:
        UnknownModelError: no such variant; the message lists close names and all names.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(f"a variant name must be a non-empty string (got {name!r})")
    key = _normalise(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    for v in _REGISTRY.values():
        if name.strip().lower() == v.timm_name:
            return v
    close = difflib.get_close_matches(key, _known_names(), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(
        f"unknown pretrained variant {name!r}.{hint} Known variants: {', '.join(_REGISTRY)} "
        "(see `zeromamba list`). A Hub repository is given as 'owner/name' or 'hf-hub:owner/name', "
        "a local model as the path of its folder."
    )


# --- timm integration ------------------------------------------------------------------------


def timm_pretrained_cfgs(architecture: str) -> dict[str, dict[str, Any]]:
    """``{"architecture.tag": cfg}`` for every variant of ``architecture``, ready for timm's
    ``generate_default_cfgs``: a Hub variant's cfg sets ``hf_hub_id`` (timm then loads its
    ``model.safetensors``), a shipped variant's sets ``file``, its weights inside the package.

    Zero-shot tags declare ``num_classes=0`` and no ``classifier``: :class:`ZeroMamba` sizes its
    head from ``num_attributes``, and a non-zero ``num_classes`` default would clash with a
    user's ``num_attributes`` when the tag becomes the architecture's default.
    """
    out = {}
    for v in _REGISTRY.values():
        if v.architecture != architecture:
            continue
        cfg = v.pretrained_cfg()
        if v.is_zero_shot:
            cfg.update(num_classes=0, classifier=None)
        cfg.update(_weights_location(v), description=v.description, paper_ids="arXiv:2408.14868")
        if v.source_url:
            cfg.update(origin_url=v.source_url)
        out[v.timm_name] = cfg
    return out


def _weights_location(v: PretrainedVariant) -> dict[str, Any]:
    if v.is_local:
        folder = v.local_path()
        assert folder is not None
        return {"file": str(folder / "model.safetensors")}
    return {"hf_hub_id": v.repo_id}


def variant_for_tag(architecture: str, tag: str | None) -> PretrainedVariant | None:
    """The zoo variant behind ``architecture.tag`` (``None`` for an unknown or empty tag)."""
    if not tag:
        return None
    return next((v for v in _REGISTRY.values() if v.architecture == architecture and v.timm_tag == tag), None)


def timm_model_args(architecture: str, tag: str | None) -> dict[str, Any]:
    """Constructor arguments a timm tag's weights need beyond the architecture's defaults
    (e.g. ``num_attributes=102`` for ``zeromamba_small.sun_gzsl``); ``{}`` for unknown tags."""
    v = variant_for_tag(architecture, tag)
    if v is None:
        return {}
    return {k: (tuple(x) if isinstance(x, list) else x) for k, x in v.model_args.items()}


def timm_hub_overlay(architecture: str, tag: str | None) -> dict[str, Any]:
    """Where a timm tag's weights are, read now: ``{"hf_hub_id": repo}`` for a Hub variant (with
    the namespace of this moment), ``{"file": path}`` for a shipped one, ``{}`` for unknown tags.

    The entry points pass it to timm as ``pretrained_cfg_overlay``, so a change of
    ``ZEROMAMBA_HUB_NAMESPACE`` after import applies to the next ``create_model``.
    """
    v = variant_for_tag(architecture, tag)
    return {} if v is None else _weights_location(v)


# --- the built-in variants -------------------------------------------------------------------

_AUTHORS_ZSL = (
    f"as reported by the authors for their released checkpoints ({PAPER}, main results; "
    f"the README of {ZEROMAMBA_CODE_URL})"
)
_ZSL_LICENSE_NOTE = (
    "The authors' repository (github.com/DingjieFu/ZeroMamba) has no licence file, so the licence of "
    "these converted weights is not known; ask the authors before redistributing. The backbone they "
    "were fine-tuned from (VMamba-S) is MIT-licensed."
)

# dataset: (attributes, classes, seen, gamma, CZSL acc, U, S, H)
_ZSL_DATASETS = {
    "CUB": (312, 200, 150, 0.3, 80.0, 72.1, 76.4, 74.2),
    "SUN": (102, 717, 645, 0.35, 72.4, 56.5, 41.4, 47.7),
    "AWA2": (85, 50, 40, 0.98, 71.9, 67.9, 87.6, 76.5),
}

for _ds, (_a, _c, _s, _gamma, _acc, _u, _seen_acc, _h) in _ZSL_DATASETS.items():
    for _task in ("gzsl", "czsl"):
        _metrics = {"czsl_acc": _acc} if _task == "czsl" else {"gzsl_u": _u, "gzsl_s": _seen_acc, "gzsl_h": _h}
        register_variant(
            PretrainedVariant(
                name=f"{_ds.lower()}-{_task}",
                architecture="zeromamba_small",
                timm_tag=f"{_ds.lower()}_{_task}",
                repo_name=f"zeromamba-small-{_ds.lower()}-{_task}",
                model_args=dict(ZEROMAMBA_ARCHITECTURES["zeromamba_small"], num_attributes=_a),
                task=_task,
                dataset=_ds,
                gamma=_gamma,
                num_classes=_c,
                num_attributes=_a,
                num_seen=_s,
                authors_metrics=_metrics,
                authors_metrics_source=_AUTHORS_ZSL,
                source_file=f"{_ds}_best{_task.upper()}.pth",
                source_url=ZEROMAMBA_WEIGHTS_URL,
                license="unknown",
                license_note=_ZSL_LICENSE_NOTE,
                published=False,  # converted and verified offline; not uploaded yet (README, "The zoo")
                description=(
                    f"ZeroMamba-S (VMamba-S backbone) on {_ds}, 448x448, the authors' checkpoint selected for "
                    f"{_task.upper()}; {_c} classes ({_s} seen / {_c - _s} unseen), {_a} attributes, gamma {_gamma}"
                ),
            )
        )

# name: (ImageNet top-1, release file)
_VMAMBA = {
    "tiny": (82.5, "vssm1_tiny_0230s_ckpt_epoch_264.pth"),
    "small": (83.6, "vssm_small_0229_ckpt_epoch_222.pth"),
    "base": (83.9, "vssm_base_0229_ckpt_epoch_237.pth"),
}

for _size, (_top1, _file) in _VMAMBA.items():
    register_variant(
        PretrainedVariant(
            name=f"vmamba-{_size}",
            architecture=f"vmamba_{_size}",
            timm_tag="in1k",
            repo_name=f"vmamba-{_size}-in1k",
            model_args=dict(VMAMBA_ARCHITECTURES[f"vmamba_{_size}"], num_classes=1000),
            task="imagenet",
            dataset="ImageNet-1k",
            input_size=(3, 224, 224),
            interpolation="bicubic",
            crop_pct=0.875,
            crop_mode="center",
            num_classes=1000,
            authors_metrics={"imagenet_top1": _top1},
            authors_metrics_source=f"as reported by the VMamba authors for this release ({VMAMBA_CODE_URL}, 224x224)",
            source_file=_file,
            source_url=VMAMBA_RELEASES_URL,
            license="mit",
            license_note="Released by the VMamba authors under the MIT licence (github.com/MzeroMiko/VMamba).",
            description=f"VMamba v2 {_size} ImageNet-1k classifier (the authors' release), 224x224",
            published=False,
        )
    )

del _ds, _a, _c, _s, _gamma, _acc, _u, _seen_acc, _h, _task, _metrics
del _size, _top1, _file

# --- the Vim releases: the authors' own Hub repositories --------------------------------------

# size: (ImageNet top-1 as the authors report it, a commit of the repository known to hold the release)
_VIM = {
    # commit from a public script's Hugging Face cache path (.../snapshots/<commit>/vim_t_midclstok_76p1acc.pth)
    "tiny": (76.1, "07c00e0e4ea2973d8e343afdd807128a57bc9fd5"),
    "small": (80.5, None),  # no commit known here: the repository's main branch
    "base": (81.9, None),
}

for _size, (_top1, _commit) in _VIM.items():
    register_variant(
        PretrainedVariant(
            name=f"vim-{_size}",
            architecture=f"vim_{_size}",
            timm_tag="in1k",
            repo_name=f"Vim-{_size}-midclstok",
            repo_id_override=f"hustvl/Vim-{_size}-midclstok",
            revision=_commit,
            hub_format="vim-release",
            model_args=dict(VIM_ARCHITECTURES[f"vim_{_size}"], num_classes=1000),
            task="imagenet",
            dataset="ImageNet-1k",
            input_size=(3, 224, 224),
            interpolation="bicubic",
            crop_pct=0.875,
            crop_mode="center",
            num_classes=1000,
            authors_metrics={"imagenet_top1": _top1},
            authors_metrics_source=f"as reported by the Vim authors for this release ({VIM_CODE_URL}, 224x224)",
            source_file="the repository's release .pth (not the fine-tuned 'ft' one)",
            source_url=f"https://huggingface.co/hustvl/Vim-{_size}-midclstok",
            license="apache-2.0",
            license_note="Released by the Vim authors (github.com/hustvl/Vim, Apache-2.0).",
            description=f"Vim-{_size} (Vision Mamba) ImageNet-1k classifier (the authors' release), 224x224",
        )
    )

del _size, _top1, _commit

# --- the embedded variant --------------------------------------------------------------------

# trained by this project (examples/train_shapes_zsl.sh); its weights ship inside the package
register_variant(
    PretrainedVariant(
        name="shapes-zsl",
        architecture="zeromamba_nano_s8",
        timm_tag="shapes_zsl",
        repo_name="zeromamba-nano-s8-shapes-zsl",
        model_args=dict(ZEROMAMBA_ARCHITECTURES["zeromamba_nano_s8"], num_attributes=10),
        task="zsl",
        dataset="shapes",
        gamma=0.05708985361418749,  # chosen on validation classes by the last fine-tuning run, as in config.json
        # its preprocessing, as in its config.json (a test checks that they agree)
        input_size=(3, 112, 112),
        crop_mode="border",
        object_extent=(0.17, 0.28),
        num_classes=36,
        num_attributes=10,
        num_seen=27,
        trained_by="the zeromamba project (examples/train_shapes_zsl.sh)",
        measured_metrics={"czsl_acc": 100.0, "gzsl_u": 98.0, "gzsl_s": 97.6, "gzsl_h": 97.8},
        measured_metrics_source=(
            "on the generated Shapes test split of seed 4242 (2250 images) with benchmarks/shapes_demo.py; "
            "more in the project's MODEL_CARD.md"
        ),
        license="mit",
        license_note=(
            "Trained by the zeromamba project from random initialisation, then fine-tuned, on generated data; MIT."
        ),
        description=(
            "ZeroMamba-nano-s8 trained by this project on the generated Shapes dataset (colour x fill x shape), "
            "drawn the many ways people draw, then fine-tuned at 112 px on a wider variety of stripes, dots and "
            "papers; 112x112 letterboxed, 14x14 attribute maps; 36 classes (27 seen / 9 unseen), 10 attributes. A demo "
            "model: it knows shapes, not birds."
        ),
        package_dir="pretrained/shapes-zsl",
    )
)
