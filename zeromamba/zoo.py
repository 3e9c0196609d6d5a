"""The model zoo: every named pretrained variant zeromamba knows, in one registry.

Each :class:`PretrainedVariant` says what the weights are (architecture and its arguments, the
task, preprocessing, gamma), where they live (a Hugging Face Hub repository, or a folder inside
the installed package for small embedded variants), where they come from (the authors' release
file they were converted from, and its licence) and what the *authors* report for them. The
metrics are the authors' published figures, not numbers this project measured.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .architectures import VIM_ARCHITECTURES, VMAMBA_ARCHITECTURES, ZEROMAMBA_ARCHITECTURES
from .constants import IMAGENET_MEAN, IMAGENET_STD
from .errors import UnknownModelError

__all__ = [
    "AVAILABILITY",
    "DEFAULT_ENDPOINT",
    "DEFAULT_NAMESPACE",
    "NAMESPACE_ENV",
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

DEFAULT_NAMESPACE = "zeromamba"
NAMESPACE_ENV = "ZEROMAMBA_HUB_NAMESPACE"
#: the Hub the ``published`` flags describe (``HF_ENDPOINT`` may point elsewhere, e.g. a mirror)
DEFAULT_ENDPOINT = "https://huggingface.co"

#: what :meth:`PretrainedVariant.availability` returns, and what each means
AVAILABILITY: dict[str, str] = {
    "shipped": "inside the installed package: loads offline",
    "cached": "in the local Hugging Face cache: loads offline",
    "hub": "downloads from the Hub on first use",
    "unpublished": "not uploaded to the Hub: convert the authors' checkpoint (zeromamba convert)",
}

PAPER = "W. Hou, D. Fu, K. Li, S. Chen, H. Fan, Y. Yang, ZeroMamba: Exploring Visual State Space Model for Zero-Shot Learning, AAAI 2025"  # noqa: E501
PAPER_URL = "https://arxiv.org/abs/2408.14868"
ZEROMAMBA_CODE_URL = "https://github.com/DingjieFu/ZeroMamba"
ZEROMAMBA_WEIGHTS_URL = "https://drive.google.com/drive/folders/1VtmU_HqvjtdyNRyp0ou3RJwB3-CmdXGv"
VMAMBA_CODE_URL = "https://github.com/MzeroMiko/VMamba"
VMAMBA_RELEASES_URL = "https://github.com/MzeroMiko/VMamba/releases"
VIM_CODE_URL = "https://github.com/hustvl/Vim"

TASKS = ("gzsl", "czsl", "imagenet", "zsl")
HUB_FORMATS = ("zeromamba", "vim-release")


def hub_namespace() -> str:
    """The Hub namespace (user or organisation) of the zoo's repositories, read now from
    ``ZEROMAMBA_HUB_NAMESPACE`` (default :data:`DEFAULT_NAMESPACE`)."""
    value = os.environ.get(NAMESPACE_ENV, "").strip().strip("/")
    return value or DEFAULT_NAMESPACE


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class PretrainedVariant:
    """One named set of pretrained weights.

    Attributes:
        name: the zoo name, e.g. ``"cub-gzsl"``.
        architecture: the timm architecture name, e.g. ``"zeromamba_small"``.
        timm_tag: the timm pretrained tag, e.g. ``"cub_gzsl"`` (``zeromamba_small.cub_gzsl``).
        repo_name: the repository name inside the namespace; the full id is :attr:`repo_id`.
        model_args: every constructor argument of the architecture.
        task: ``"gzsl"``, ``"czsl"`` (zero-shot, the checkpoint selected for that protocol),
            ``"zsl"`` (zero-shot, no protocol) or ``"imagenet"`` (a backbone).
        dataset: ``"CUB"``, ``"SUN"``, ``"AWA2"``, ``"ImageNet-1k"``, ...
        gamma: calibrated-stacking gamma for GZSL (the authors' per-dataset value), else ``None``.
        input_size: ``(3, H, W)`` the resolution the weights were trained at.
        interpolation, crop_pct, crop_mode, mean, std: preprocessing (timm's names).
        num_classes: classes of the dataset (zero-shot) or of the classifier (ImageNet).
        num_attributes: width of the attribute space (zero-shot variants).
        num_seen: how many of ``num_classes`` were seen in training (zero-shot variants).
        authors_metrics: the metrics **as the authors report them** for their released weights
            (percent). Not measured by this project.
        authors_metrics_source: where those figures are published.
        source_file: the authors' release file these weights are converted from.
        source_url: where that file is published.
        license: licence identifier of the weights (SPDX, or ``"unknown"``).
        license_note: what is known about that licence.
        description: one line for tables and model cards.
        revision: the Hub revision to download (``None``: ``main``).
        repo_id_override: a fixed repository id that ignores the namespace.
        package_dir: for variants shipped inside the package: the folder, relative to the
            ``zeromamba`` package, holding ``config.json`` + ``model.safetensors``; resolved
            without any network access.
        published: whether :attr:`repo_id` exists on huggingface.co under the default namespace.
            ``False`` makes loading fail at once with :meth:`convert_instructions` instead of
            waiting on the network (unless the files are cached, or ``ZEROMAMBA_HUB_NAMESPACE`` /
            ``HF_ENDPOINT`` point somewhere they may exist).
        hub_format: what the Hub repository holds: ``"zeromamba"`` (a saved model folder) or
            ``"vim-release"`` (the Vim authors' own repository with their ``.pth`` release files,
            found by listing the repository and read by :mod:`zeromamba.hub.release`).
    """

    name: str
    architecture: str
    timm_tag: str
    repo_name: str
    model_args: Mapping[str, Any]
    task: str
    dataset: str
    gamma: float | None = None
    input_size: tuple[int, int, int] = (3, 448, 448)
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    crop_mode: str = "squash"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int | None = None
    num_attributes: int | None = None
    num_seen: int | None = None
    authors_metrics: Mapping[str, float] = field(default_factory=lambda: _frozen(None))
    authors_metrics_source: str = ""
    source_file: str = ""
    source_url: str = ""
    license: str = "unknown"
    license_note: str = ""
    description: str = ""
    revision: str | None = None
    repo_id_override: str | None = None
    package_dir: str | None = None
    published: bool = True
    hub_format: str = "zeromamba"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)} (got {self.task!r})")
        if self.hub_format not in HUB_FORMATS:
            raise ValueError(f"hub_format must be one of {', '.join(HUB_FORMATS)} (got {self.hub_format!r})")
        # keep the registry immutable: callers get read-only views
        object.__setattr__(self, "model_args", _frozen(self.model_args))
        object.__setattr__(self, "authors_metrics", _frozen(self.authors_metrics))

    @property
    def repo_id(self) -> str:
        """``namespace/repo_name``, with the namespace read from the environment now."""
        return self.repo_id_override or f"{hub_namespace()}/{self.repo_name}"

    @property
    def timm_name(self) -> str:
        """``architecture.tag``, the name to give ``timm.create_model``."""
        return f"{self.architecture}.{self.timm_tag}"

    @property
    def is_zero_shot(self) -> bool:
        return self.task != "imagenet"

    @property
    def is_local(self) -> bool:
        """Weights shipped inside the package (no download)."""
        return self.package_dir is not None

    def local_path(self) -> Path | None:
        """The folder of an embedded variant, or ``None`` for a Hub variant."""
        if self.package_dir is None:
            return None
        return Path(__file__).resolve().parent / self.package_dir

    def known_unpublished(self) -> bool:
        """Whether the zoo knows this variant's repository is absent: a Hub variant not
        :attr:`published`, asked for under the default namespace on huggingface.co."""
        if self.is_local or self.published:
            return False
        if self.repo_id_override is None and hub_namespace() != DEFAULT_NAMESPACE:
            return False
        from huggingface_hub import constants

        return constants.ENDPOINT.rstrip("/") == DEFAULT_ENDPOINT

    def cached_folder(self, cache_dir: str | os.PathLike | None = None) -> Path | None:
        """The snapshot folder holding this Hub variant's ``config.json`` and ``model.safetensors`` in
        the Hugging Face cache, or ``None`` (never touches the network)."""
        if self.is_local:
            return None
        from huggingface_hub import try_to_load_from_cache

        found = [
            try_to_load_from_cache(self.repo_id, name, cache_dir=cache_dir, revision=self.revision)
            for name in ("config.json", "model.safetensors")
        ]
        if not all(isinstance(f, str) for f in found):
            return None
        folders = {Path(f).parent for f in found}  # type: ignore[arg-type]
        return folders.pop() if len(folders) == 1 else None

    def availability(self, cache_dir: str | os.PathLike | None = None) -> str:
        """``"shipped"``, ``"cached"``, ``"hub"`` or ``"unpublished"`` (see :data:`AVAILABILITY`),
        decided without network access."""
        if self.is_local:
            return "shipped"
        if self.cached_folder(cache_dir) is not None:
            return "cached"
        return "unpublished" if self.known_unpublished() else "hub"

    def convert_instructions(self) -> str:
        """How to get this variant without the Hub (see :func:`convert_instructions`)."""
        return convert_instructions(self)

    def pretrained_cfg(self) -> dict[str, Any]:
        """The preprocessing and head description, in timm's ``pretrained_cfg`` vocabulary."""
        h, w = self.input_size[1], self.input_size[2]
        cfg: dict[str, Any] = dict(
            input_size=tuple(self.input_size),
            interpolation=self.interpolation,
            crop_pct=self.crop_pct,
            crop_mode=self.crop_mode,
            mean=tuple(self.mean),
            std=tuple(self.std),
            pool_size=(h // 32, w // 32),
            license=self.license,
        )
        if self.is_zero_shot:
            cfg.update(num_classes=self.num_attributes or 0, first_conv="backbone.patch_embed.0", classifier="fusion")
        else:
            cfg.update(num_classes=self.num_classes or 1000, first_conv="patch_embed.0", classifier="classifier.head")
        if self.architecture.startswith("vim_"):  # a plain patch-token model: no /32 feature map
            cfg.update(first_conv="patch_embed.proj", classifier="head")
            cfg.pop("pool_size")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able description (what ``zeromamba list --json`` prints)."""
        return dict(
            name=self.name,
            repo_id=self.repo_id,
            timm_name=self.timm_name,
            architecture=self.architecture,
            task=self.task,
            dataset=self.dataset,
            gamma=self.gamma,
            input_size=list(self.input_size),
            num_classes=self.num_classes,
            num_attributes=self.num_attributes,
            num_seen=self.num_seen,
            model_args={k: list(v) if isinstance(v, tuple) else v for k, v in self.model_args.items()},
            authors_metrics=dict(self.authors_metrics),
            authors_metrics_source=self.authors_metrics_source,
            source_file=self.source_file,
            source_url=self.source_url,
            license=self.license,
            license_note=self.license_note,
            description=self.description,
            revision=self.revision,
            local=self.is_local,
            published=self.is_local or self.published,
            hub_format=self.hub_format,
        )


def convert_instructions(variant: PretrainedVariant | None = None) -> str:
    """How to load weights without the Hub: the ``zeromamba convert`` command for the variant's
    source checkpoint (any checkpoint when ``variant`` is ``None``), then loading the folder."""
    if variant is None or not variant.source_file:
        return (
            "if you have a checkpoint file, convert it and load the folder instead: `zeromamba convert "
            "CHECKPOINT.pth --out DIR/` then `zeromamba.from_pretrained('DIR/')`."
        )
    data = " --att-splits att_splits.mat --res101 res101.mat" if variant.is_zero_shot else ""
    return (
        f"if you have the authors' checkpoint ({variant.source_file}, from {variant.source_url}), convert it and "
        f"load the folder instead: `zeromamba convert {variant.source_file} --variant {variant.name}{data} "
        f"--out {variant.name}/` then `zeromamba.from_pretrained('{variant.name}/')`."
    )


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
        """The table ``zeromamba list`` prints: name, timm name, task, dataset, gamma, the authors'
        reported metrics and availability (see :data:`AVAILABILITY`)."""
        rows = [("name", "timm name", "task", "dataset", "gamma", "authors' reported %", "available")]
        for v in self:
            metrics = ", ".join(f"{k}={x:.1f}" for k, x in v.authors_metrics.items())
            gamma = "" if v.gamma is None else f"{v.gamma:g}"
            rows.append((v.name, v.timm_name, v.task, v.dataset, gamma, metrics, v.availability(cache_dir)))
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
        architecture="zeromamba_nano",
        timm_tag="shapes_zsl",
        repo_name="zeromamba-nano-shapes-zsl",
        model_args=dict(ZEROMAMBA_ARCHITECTURES["zeromamba_nano"], num_attributes=10),
        task="zsl",
        dataset="shapes",
        gamma=0.22863910820524513,  # chosen on validation classes by the training run, as in config.json
        input_size=(3, 64, 64),
        num_classes=36,
        num_attributes=10,
        num_seen=27,
        license="mit",
        license_note="Trained by the zeromamba project from random initialisation on generated data; MIT.",
        description=(
            "ZeroMamba-nano trained by this project on the generated Shapes dataset (colour x fill x shape), "
            "64x64; 36 classes (27 seen / 9 unseen), 10 attributes. A demo model: it knows shapes, not birds."
        ),
        package_dir="pretrained/shapes-zsl",
    )
)
