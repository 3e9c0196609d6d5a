"""Finding a model by name and downloading it: zoo names, Hub repositories and local folders.

Downloads go through ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, progress
bars, token); only the saved format's files are fetched, and only safetensors are ever loaded.
Every failure becomes a :class:`~zeromamba.errors.ZeroMambaError` saying what to do.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ConfigError, ModelNotAvailableError, UnknownModelError, ZeroMambaError
from ..format import CONFIG_NAME, WEIGHTS_NAME, LoadedModel, load_folder, read_config
from ..runtime import parse_dtype
from ..version import __version__
from ..zoo import PretrainedVariant, get_variant, list_pretrained
from .release import load_release, release_variant

__all__ = ["REPO_ID", "load_model", "load_pretrained", "resolve_model_dir"]

#: a Hub repository id, ``owner/name``
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _hub_error(
    e: BaseException, repo_id: str, revision: str | None, filename: str, variant: PretrainedVariant | None
) -> ZeroMambaError:
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or "main"
    where = f"{constants.ENDPOINT}"
    if variant is not None and variant.source_file:
        convert = (
            f"if you have the authors' checkpoint ({variant.source_file}, from {variant.source_url}), convert it "
            f"and load the folder instead: `zeromamba convert {variant.source_file} --variant {variant.name}"
            + (" --att-splits att_splits.mat --res101 res101.mat" if variant.is_zero_shot else "")
            + f" --out {variant.name}/` then `zeromamba.from_pretrained('{variant.name}/')`."
        )
    else:
        convert = (
            "if you have a checkpoint file, convert it and load the folder instead: `zeromamba convert "
            "CHECKPOINT.pth --out DIR/` then `zeromamba.from_pretrained('DIR/')`."
        )
    if isinstance(e, RevisionNotFoundError):
        return ModelNotAvailableError(
            f"revision {rev!r} does not exist in the Hub repository {repo_id!r} ({where}). "
            "Check the branch, tag or commit, or leave revision unset for 'main'."
        )
    if isinstance(e, RepositoryNotFoundError):
        return ModelNotAvailableError(
            f"the Hub repository {repo_id!r} does not exist at {where} (or it is private or gated: log in with "
            f"`hf auth login` or pass a token). Known zoo variants: {', '.join(v.name for v in list_pretrained())}."
        )
    if isinstance(e, RemoteEntryNotFoundError):
        extra = " zeromamba loads safetensors only, never pickled weights." if filename.endswith(".safetensors") else ""
        return ModelNotAvailableError(
            f"the Hub repository {repo_id!r} (revision {rev!r}) has no {filename}: it is not a zeromamba model folder."
            f"{extra} {convert[0].upper() + convert[1:]}"
        )
    if isinstance(e, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        offline = constants.HF_HUB_OFFLINE
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else f"the Hub ({where}) cannot be reached"
        fix = "unset HF_HUB_OFFLINE" if offline else "connect to the network"
        return ModelNotAvailableError(
            f"cannot get {filename} of {repo_id!r} (revision {rev!r}): {why}, and it is not in the local Hugging "
            f"Face cache. Either {fix} and load it once to cache it, or: {convert}"
        )
    if isinstance(e, HfHubHTTPError):
        return ModelNotAvailableError(f"downloading {filename} of {repo_id!r} (revision {rev!r}) failed: {e}")
    return ModelNotAvailableError(f"cannot download {filename} of {repo_id!r} (revision {rev!r}): {e}")


def _download(
    repo_id: str,
    filename: str,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    variant: PretrainedVariant | None,
    force_download: bool,
    local_files_only: bool,
    token: str | bool | None,
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
            )
        )
    except HFValidationError as e:
        raise UnknownModelError(f"{repo_id!r} is not a valid Hub repository id: {e}") from None
    except (OSError, ValueError) as e:  # every huggingface_hub download error derives from these
        raise _hub_error(e, repo_id, revision, filename, variant) from None


def _parse_source(name: str) -> tuple[str, str | None, str | None]:
    """``(kind, repo_or_path, revision)`` with kind ``dir``, ``repo`` or ``zoo``."""
    if name.startswith("hf-hub:") or name.startswith("hf_hub:"):
        repo = name.split(":", 1)[1]
        rev = None
        if "@" in repo:
            repo, rev = repo.split("@", 1)
        return "repo", repo, rev
    if os.path.isdir(name):
        return "dir", name, None
    return "zoo", name, None


def resolve_model_dir(
    name_or_repo_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> tuple[Path, str]:
    """Find (downloading if needed) the folder of a model: ``(folder, description of the source)``.

    Accepts a zoo name (``cub-gzsl``), ``hf-hub:owner/repo[@revision]``, ``owner/repo``, or a local
    folder (a folder wins over a repository id of the same spelling).
    """
    name = os.fspath(name_or_repo_or_dir)
    kind, target, rev = _parse_source(name)
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
    args = (revision, cache_dir, variant, force_download, local_files_only, token)
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
    source = f"{target!r}" + (f" (revision {revision!r})" if revision else "")
    return folder, source


def load_pretrained(
    name_or_repo_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
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
    )
    return load_folder(folder, source)


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
) -> nn.Module:
    """The bare model (``ZeroMamba``, ``VMamba`` or ``Vim``, eval mode) of a zoo name, Hub repository or folder."""
    model = load_pretrained(
        name_or_repo_or_dir,
        revision=revision,
        cache_dir=cache_dir,
        force_download=force_download,
        local_files_only=local_files_only,
        token=token,
    ).model
    return model.to(device=device, dtype=parse_dtype(dtype) if dtype is not None else None)
