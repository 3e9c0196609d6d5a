"""Finding a model by name and downloading it: zoo names, Hub repositories and local folders.

Downloads go through ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, progress
bars, token); only the saved format's files are fetched, and only safetensors are ever loaded.
Every failure becomes a :class:`~zeromamba.errors.ZeroMambaError` saying what to do, and none
waits long (see :mod:`zeromamba.hubcheck`): a zoo variant known not to be published fails at once
unless cached; otherwise the Hub is asked once, within the timeout, before downloading, and a Hub
that does not answer falls back to the cache.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ConfigError, ModelNotAvailableError, UnknownModelError
from ..format import CONFIG_NAME, WEIGHTS_NAME, LoadedModel, load_folder, read_config
from ..hubcheck import (
    REPO_ID,
    hub_error,
    hub_timeout,
    offline,
    parse_source,
    probe,
    unpublished_error,
    unreachable_error,
)
from ..models.int8 import quantize_int8
from ..runtime import check_device, parse_dtype, parse_inference_dtype
from ..version import __version__
from ..zoo import PretrainedVariant, get_variant
from .release import load_release, release_variant

__all__ = ["REPO_ID", "load_model", "load_pretrained", "resolve_model_dir"]


def _download(
    repo_id: str,
    filename: str,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    variant: PretrainedVariant | None,
    force_download: bool,
    local_files_only: bool,
    token: str | bool | None,
    timeout: float | None = None,
) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError

    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                library_name="zeromamba",
                library_version=__version__,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
                etag_timeout=hub_timeout(timeout),
            )
        )
    except HFValidationError as e:
        raise UnknownModelError(f"{repo_id!r} is not a valid Hub repository id: {e}") from None
    except (OSError, ValueError) as e:  # every huggingface_hub download error derives from these
        raise hub_error(e, repo_id, revision, filename, variant) from None


def _fetch_folder(
    target: str,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    variant: PretrainedVariant | None,
    force_download: bool,
    token: str | bool | None,
    timeout: float | None,
    *,
    local_files_only: bool,
) -> Path:
    """Download (or find in the cache) config.json, then the files it names, all of one commit."""
    args = (revision, cache_dir, variant, force_download, local_files_only, token, timeout)
    config_path = _download(target, CONFIG_NAME, *args)
    folder = config_path.parent
    # pin the remaining files to the commit config.json came from, so a push between two
    # downloads cannot mix files of different commits
    commit = folder.name if re.fullmatch(r"[0-9a-f]{40}", folder.name) else revision
    cfg = read_config(config_path)
    files = [WEIGHTS_NAME]
    ca = cfg.get("class_attributes")
    if isinstance(ca, dict) and ca.get("file"):
        files.append(str(ca["file"]))
    for f in files:
        got = _download(target, f, commit, *args[1:])
        if got.parent != folder:  # a different snapshot folder: copy-free fallback is not possible
            raise ModelNotAvailableError(f"{target!r}: {f} and {CONFIG_NAME} resolved to different commits; retry")
    return folder


def resolve_model_dir(
    name_or_repo_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
    timeout: float | None = None,
) -> tuple[Path, str]:
    """Find (downloading if needed) the folder of a model: ``(folder, description of the source)``.

    Accepts a zoo name (``cub-gzsl``), ``hf-hub:owner/repo[@revision]``, ``owner/repo``, or a local
    folder (a folder wins over a repository id of the same spelling). ``timeout``: seconds to wait
    for the Hub's first answer (default ``$ZEROMAMBA_HUB_TIMEOUT``, else 10).
    """
    name = os.fspath(name_or_repo_or_dir)
    kind, target, rev = parse_source(name)
    variant = None
    if kind == "dir":
        return Path(target), repr(target)
    if kind == "zoo":
        try:
            variant = get_variant(target)
        except UnknownModelError:
            if not REPO_ID.match(target):
                if os.path.exists(target):
                    raise ConfigError(f"{target!r} is a file; give the model's folder (with config.json)") from None
                raise
            kind = "repo"
        else:
            if variant.is_local:
                folder = variant.local_path()
                assert folder is not None
                return folder, f"the embedded variant {variant.name!r} ({folder})"
            target, rev = variant.repo_id, variant.revision
    revision = revision or rev
    source = f"{target!r}" + (f" (revision {revision!r})" if revision else "")
    fetch = functools.partial(_fetch_folder, target, revision, cache_dir, variant, force_download, token, timeout)
    if variant is not None and variant.known_unpublished():
        if force_download:
            raise unpublished_error(variant)
        try:  # nothing to ask the Hub: the cache or a clear error, at once
            return fetch(local_files_only=True), source
        except ModelNotAvailableError:
            raise unpublished_error(variant) from None
    if local_files_only or offline():
        return fetch(local_files_only=local_files_only), source
    failure = probe(target, CONFIG_NAME, revision=revision, token=token, timeout=timeout, variant=variant)
    if failure is None:
        return fetch(local_files_only=False), source
    try:  # the Hub did not answer: what the cache holds, as huggingface_hub itself would
        return fetch(local_files_only=True), source
    except ModelNotAvailableError:
        raise unreachable_error(failure, target, timeout, variant) from None


def load_pretrained(
    name_or_repo_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
    timeout: float | None = None,
) -> LoadedModel:
    """Resolve a zoo name, Hub repository or folder (downloading if needed) and load it: config,
    model (strictly, eval mode) and class-attribute matrix.

    The Vim releases (``vim-tiny``, ``hustvl/Vim-tiny-midclstok``, ...) are the authors' own
    repositories: they are read by :func:`zeromamba.hub.release.load_release`."""
    release = release_variant(name_or_repo_or_dir)
    if release is not None:
        return load_release(
            release[0],
            revision=revision or release[1],
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
    folder, source = resolve_model_dir(
        name_or_repo_or_dir,
        revision=revision,
        cache_dir=cache_dir,
        force_download=force_download,
        local_files_only=local_files_only,
        token=token,
        timeout=timeout,
    )
    loaded = load_folder(folder, source)
    variant = _zoo_variant(name_or_repo_or_dir)
    if variant is not None and variant.architecture == loaded.config["architecture"]:
        loaded.model.pretrained_cfg.setdefault("tag", variant.timm_tag)  # the zoo's name for these weights
    return loaded


def _zoo_variant(name: str | os.PathLike) -> PretrainedVariant | None:
    kind, target, _ = parse_source(os.fspath(name))
    if kind != "zoo":
        return None
    try:
        return get_variant(target)
    except UnknownModelError:
        return None


def load_model(
    name_or_repo_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
    timeout: float | None = None,
) -> nn.Module:
    """The bare model (``ZeroMamba``, ``VMamba`` or ``Vim``, eval mode) of a zoo name, Hub repository or folder.

    ``dtype="int8"`` gives the model with its large linear layers in int8, for CPU inference
    (:func:`zeromamba.models.int8.quantize_int8`; :class:`~zeromamba.errors.Int8UnavailableError`
    where that cannot run)."""
    model = load_pretrained(
        name_or_repo_or_dir,
        revision=revision,
        cache_dir=cache_dir,
        force_download=force_download,
        local_files_only=local_files_only,
        token=token,
        timeout=timeout,
    ).model
    if dtype is not None and parse_inference_dtype(dtype) == torch.int8:
        return quantize_int8(model.to(device=check_device(device)))
    return model.to(device=check_device(device), dtype=parse_dtype(dtype) if dtype is not None else None)
