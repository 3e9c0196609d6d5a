"""One named set of pretrained weights: :class:`PretrainedVariant`, what it describes and how it
answers where its weights are (shipped, cached, on the Hub, unpublished) without network access.

The registry of every variant zeromamba knows, and the built-in entries, are in
:mod:`zeromamba.zoo`. A leaf: no torch, no timm, no other layer of the package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .architectures import vmamba_reduction
from .constants import IMAGENET_MEAN, IMAGENET_STD
from .fileio import cache_root

__all__ = [
    "AVAILABILITY",
    "DEFAULT_ENDPOINT",
    "DEFAULT_NAMESPACE",
    "HUB_FORMATS",
    "NAMESPACE_ENV",
    "TASKS",
    "PretrainedVariant",
    "convert_instructions",
    "hub_namespace",
    "release_folder",
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
    "offline": "not cached, and huggingface_hub is offline (HF_HUB_OFFLINE): does not load now",
    "unpublished": "not uploaded to the Hub: convert the authors' checkpoint (zeromamba convert)",
}

TASKS = ("gzsl", "czsl", "imagenet", "zsl")
HUB_FORMATS = ("zeromamba", "vim-release")


def hub_namespace() -> str:
    """The Hub namespace (user or organisation) of the zoo's repositories, read now from
    ``ZEROMAMBA_HUB_NAMESPACE`` (default :data:`DEFAULT_NAMESPACE`)."""
    value = os.environ.get(NAMESPACE_ENV, "").strip().strip("/")
    return value or DEFAULT_NAMESPACE


def release_folder(repo_id: str) -> Path:
    """Where the converted safetensors copies of a ``vim-release`` repository's files are cached:
    ``<zeromamba cache>/releases/<owner>--<name>/<commit>/model.safetensors``, with ``refs/<revision>``
    holding the commit a branch or tag resolved to (see :mod:`zeromamba.hub.release`)."""
    return cache_root() / "releases" / repo_id.replace("/", "--")


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
        object_extent: ``(smallest, target)`` object framing before that (:mod:`zeromamba.framing`),
            or ``None``; zeromamba's own, kept beside timm's ``pretrained_cfg`` keys.
        num_classes: classes of the dataset (zero-shot) or of the classifier (ImageNet).
        num_attributes: width of the attribute space (zero-shot variants).
        num_seen: how many of ``num_classes`` were seen in training (zero-shot variants).
        authors_metrics: the metrics **as the authors report them** for their released weights
            (percent). Not measured by this project.
        authors_metrics_source: where those figures are published.
        trained_by: who trained the weights (the authors, for converted releases).
        measured_metrics: metrics (percent) this project measured on the weights itself.
        measured_metrics_source: how and where those were measured.
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
    object_extent: tuple[float, float] | None = None
    num_classes: int | None = None
    num_attributes: int | None = None
    num_seen: int | None = None
    authors_metrics: Mapping[str, float] = field(default_factory=lambda: _frozen(None))
    authors_metrics_source: str = ""
    trained_by: str = "the authors"
    measured_metrics: Mapping[str, float] = field(default_factory=lambda: _frozen(None))
    measured_metrics_source: str = ""
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
        object.__setattr__(self, "measured_metrics", _frozen(self.measured_metrics))

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
        """The folder holding this Hub variant's weights on this machine, or ``None`` (never touches
        the network): the Hugging Face cache's snapshot with ``config.json`` and ``model.safetensors``,
        or for a ``vim-release`` variant zeromamba's converted copy (:func:`release_folder`)."""
        if self.is_local:
            return None
        if self.hub_format == "vim-release":
            return self._cached_release()
        from huggingface_hub import try_to_load_from_cache

        found = [
            try_to_load_from_cache(self.repo_id, name, cache_dir=cache_dir, revision=self.revision)
            for name in ("config.json", "model.safetensors")
        ]
        if not all(isinstance(f, str) for f in found):
            return None
        folders = {Path(f).parent for f in found}  # type: ignore[arg-type]
        return folders.pop() if len(folders) == 1 else None

    def _cached_release(self) -> Path | None:
        folder = release_folder(self.repo_id)
        commit = self.revision
        if commit is None:
            ref = folder / "refs" / "main"
            try:
                commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""
            except OSError:
                commit = ""
        found = folder / commit / "model.safetensors" if commit else None
        return found.parent if found is not None and found.is_file() else None

    def availability(self, cache_dir: str | os.PathLike | None = None) -> str:
        """``"shipped"``, ``"cached"``, ``"hub"``, ``"offline"`` or ``"unpublished"`` (see
        :data:`AVAILABILITY`), decided without network access: only ``"shipped"`` and ``"cached"``
        load without the network."""
        if self.is_local:
            return "shipped"
        if self.cached_folder(cache_dir) is not None:
            return "cached"
        if self.known_unpublished():
            return "unpublished"
        from huggingface_hub import constants

        return "offline" if constants.HF_HUB_OFFLINE else "hub"

    def convert_instructions(self) -> str:
        """How to get this variant without the Hub (see :func:`convert_instructions`)."""
        return convert_instructions(self)

    @property
    def output_stride(self) -> int:
        """Input pixels per cell of the last VMamba feature map (32 for the four-stage published models)."""
        depths = self.model_args.get("depths") if self.model_args else None
        return vmamba_reduction(len(depths) - 1 if depths else 3)

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
            pool_size=(h // self.output_stride, w // self.output_stride),
            license=self.license,
        )
        if self.is_zero_shot:
            cfg.update(num_classes=self.num_attributes or 0, first_conv="backbone.patch_embed.0", classifier="fusion")
        else:
            cfg.update(num_classes=self.num_classes or 1000, first_conv="patch_embed.0", classifier="classifier.head")
        if self.architecture.startswith("vim_"):  # a plain patch-token model: no feature map to pool
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
            trained_by=self.trained_by,
            measured_metrics=dict(self.measured_metrics),
            measured_metrics_source=self.measured_metrics_source,
            object_extent=list(self.object_extent) if self.object_extent is not None else None,
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
