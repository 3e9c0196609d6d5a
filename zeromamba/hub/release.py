"""The Vim authors' own Hub repositories (``hustvl/Vim-{tiny,small,base}-midclstok``): finding the
release file, reading it safely once, and keeping a safetensors copy so that later loads never
unpickle.

Those repositories hold the authors' ``.pth`` training checkpoints, not zeromamba folders. For a
zoo variant with ``hub_format="vim-release"``:

1. The revision (the variant's pinned commit, the caller's, or ``main``) is resolved to a commit
   by asking the Hub for the repository's listing (``HfApi.model_info``), which also names its
   files. Offline, a pinned commit is used as it is and a branch name is looked up in the record
   of the last online resolution.
2. The checkpoint is the one file of the listing ending in ``.pth``/``.pt``/``.bin``/``.ckpt`` that
   is not a fine-tuned ("ft") variant; none or several is an error naming the files.
3. It is downloaded with ``hf_hub_download`` (the Hugging Face cache, token, ``HF_ENDPOINT``) and
   read with :func:`zeromamba.official.read_official_state_dict` (``weights_only`` plus
   ``argparse.Namespace`` only: anything else is refused without running code; dense CPU tensors
   without stride 0), fitted to the variant's architecture on the ``meta`` device, then built and
   loaded strictly (:func:`zeromamba.official.build_checked`).
4. Only then is the ``model`` state dict written, atomically, as safetensors into the zeromamba
   cache (``$ZEROMAMBA_CACHE_DIR``, else ``$XDG_CACHE_HOME/zeromamba``, else ``~/.cache/zeromamba``)
   under ``releases/<owner>--<name>/<commit>/model.safetensors``. Every later load of that commit
   reads this file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ModelNotAvailableError, UnknownModelError
from ..fileio import atomic_write, cache_root, write_text
from ..format import FORMAT_VERSION, LoadedModel, attach_pretrained_cfg, load_safetensors
from ..models.vim import Vim, checkpoint_filter_fn, set_release_file_resolver
from ..official import build_checked, is_vim_state_dict, read_official_state_dict
from ..pretrained_variant import release_folder
from ..version import __version__
from ..zoo import PretrainedVariant, get_variant, list_pretrained

__all__ = [
    "RELEASE_SUFFIXES",
    "choose_release_file",
    "load_release",
    "release_cache_dir",
    "release_variant",
    "timm_release_file",
]

#: the file endings of checkpoint files in a release repository
RELEASE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_FINETUNED = re.compile(r"(^|[_.-])ft([_.-]|$)", re.IGNORECASE)


def release_cache_dir() -> Path:
    """Where the safetensors copies of release files are kept."""
    return cache_root() / "releases"


def release_variant(name: str | os.PathLike) -> tuple[PretrainedVariant, str | None] | None:
    """``(variant, revision named in it)`` for the release-format zoo variant ``name`` designates
    (a zoo or timm name, or its repository as ``owner/name`` / ``hf-hub:owner/name[@revision]``),
    or ``None``."""
    name = os.fspath(name)
    if os.path.isdir(name):
        return None
    repo = name.split(":", 1)[1] if name.startswith(("hf-hub:", "hf_hub:")) else name
    repo, _, revision = repo.partition("@")
    for v in list_pretrained():
        if v.hub_format == "vim-release" and repo == v.repo_id:
            return v, revision or None
    try:
        v = get_variant(name)
    except UnknownModelError:
        return None
    return (v, None) if v.hub_format == "vim-release" else None


def choose_release_file(files: list[str], repo_id: str) -> str:
    """The release checkpoint among a repository's ``files``: the one top-level checkpoint that is
    not a fine-tuned ("ft") variant.

    Raises:
        ModelNotAvailableError: no such file, or more than one (the message lists them).
    """
    checkpoints = sorted(f for f in files if "/" not in f and f.lower().endswith(RELEASE_SUFFIXES))
    plain = [f for f in checkpoints if not _FINETUNED.search(Path(f).stem)]
    if len(plain) == 1:
        return plain[0]
    listing = ", ".join(sorted(files)) or "nothing"
    what = "no checkpoint file" if not plain else f"{len(plain)} candidate checkpoints ({', '.join(plain)})"
    raise ModelNotAvailableError(
        f"the Hub repository {repo_id!r} has {what} besides fine-tuned ones; it holds: {listing}. "
        "Download the file you want and load it with zeromamba.load_official(path)."
    )


def _folder(repo_id: str) -> Path:
    return release_folder(repo_id)


def _ref_file(repo_id: str, revision: str) -> Path:
    return _folder(repo_id) / "refs" / revision.replace("/", "--")


def _hub_failure(e: BaseException, repo_id: str, revision: str) -> ModelNotAvailableError:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(e, RevisionNotFoundError):
        return ModelNotAvailableError(f"revision {revision!r} does not exist in the Hub repository {repo_id!r}")
    if isinstance(e, RepositoryNotFoundError):
        return ModelNotAvailableError(
            f"the Hub repository {repo_id!r} does not exist (or it is private or gated: log in with `hf auth login`)"
        )
    return ModelNotAvailableError(f"cannot reach the Hub for {repo_id!r} (revision {revision!r}): {e}")


def _offline(local_files_only: bool) -> bool:
    from huggingface_hub import constants

    return local_files_only or bool(constants.HF_HUB_OFFLINE)


def _resolve_commit(
    repo_id: str, revision: str, local_files_only: bool, token: str | bool | None
) -> tuple[str, list[str] | None]:
    """``(commit, files of the listing or None when it was not fetched)``."""
    ref = _ref_file(repo_id, revision)
    if _COMMIT.match(revision) and (_folder(repo_id) / revision / "model.safetensors").is_file():
        return revision, None  # pinned and converted: nothing to ask
    if _offline(local_files_only):
        if _COMMIT.match(revision):
            return revision, None
        if ref.is_file():
            return ref.read_text().strip(), None
        raise ModelNotAvailableError(
            f"cannot resolve {repo_id!r} (revision {revision!r}) offline: it was never loaded online on this machine. "
            "Connect to the network once (unset HF_HUB_OFFLINE) to download and convert it."
        )
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo_id, revision=revision, token=token)
    except Exception as e:  # not found, no network, HTTP errors
        failure = _hub_failure(e, repo_id, revision)
        if "cannot reach" in str(failure) and ref.is_file():
            return ref.read_text().strip(), None  # the Hub is down: use what was resolved before
        raise failure from None
    commit = str(info.sha)
    if not _COMMIT.match(revision):
        write_text(ref, commit + "\n")
    return commit, [s.rfilename for s in (info.siblings or [])]


def _build(variant: PretrainedVariant, state_dict: dict[str, torch.Tensor], source: str) -> Vim:
    if not is_vim_state_dict(state_dict):
        raise CheckpointError(f"{source} is not a Vim checkpoint (no pos_embed / bidirectional mixers)")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in variant.model_args.items()}
    return build_checked(Vim, args, state_dict, checkpoint_filter_fn, source)  # type: ignore[return-value]


def _convert(
    variant: PretrainedVariant,
    commit: str,
    files: list[str] | None,
    cache_dir: str | os.PathLike | None,
    force_download: bool,
    token: str | bool | None,
) -> Path:
    """Download the release file of ``commit``, read it safely, check it, write the safetensors copy."""
    from huggingface_hub import HfApi, hf_hub_download

    repo_id = variant.repo_id
    try:
        if files is None:
            info = HfApi().model_info(repo_id, revision=commit, token=token)
            files = [s.rfilename for s in (info.siblings or [])]
        filename = choose_release_file(files, repo_id)
        path = hf_hub_download(
            repo_id,
            filename,
            revision=commit,
            cache_dir=cache_dir,
            force_download=force_download,
            token=token,
            library_name="zeromamba",
            library_version=__version__,
        )
    except ModelNotAvailableError:
        raise
    except Exception as e:
        raise _hub_failure(e, repo_id, commit) from None
    source = f"{filename} of {repo_id!r} (commit {commit})"
    state = read_official_state_dict(path)  # weights_only + argparse.Namespace: refuses anything else
    _build(variant, state, source)  # it must load before it is cached
    target = _folder(repo_id) / commit / "model.safetensors"
    metadata = {"repo_id": repo_id, "commit": commit, "filename": filename, "format": "vim-release"}
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}

    def write(tmp: Path) -> None:
        import safetensors.torch

        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)

    atomic_write(target, write)
    return target


def release_file(
    variant: PretrainedVariant,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> tuple[Path, str]:
    """The cached safetensors copy of ``variant``'s release file (made now if needed): ``(path, commit)``.

    Raises:
        ModelNotAvailableError: the Hub cannot be reached and nothing is cached; no such repository,
            revision or release file.
        CheckpointError: the release file needs more than tensors and ``argparse.Namespace`` to
            unpickle (refused, no code run), or does not fit the variant's architecture.
    """
    revision = revision or variant.revision or "main"
    commit, files = _resolve_commit(variant.repo_id, revision, local_files_only, token)
    target = _folder(variant.repo_id) / commit / "model.safetensors"
    if target.is_file() and not force_download:
        return target, commit
    if _offline(local_files_only):
        raise ModelNotAvailableError(
            f"{variant.repo_id!r} (commit {commit}) is not in the zeromamba cache ({release_cache_dir()}) and offline "
            "mode is on: load it once online."
        )
    return _convert(variant, commit, files, cache_dir, force_download, token), commit


def _config(variant: PretrainedVariant, commit: str) -> dict[str, Any]:
    args = {k: list(v) if isinstance(v, tuple) else v for k, v in variant.model_args.items()}
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in variant.pretrained_cfg().items()}
    return dict(
        zeromamba_format=FORMAT_VERSION,
        architecture=variant.architecture,
        model_args=args,
        pretrained_cfg=cfg,
        source=dict(repo_id=variant.repo_id, commit=commit, format=variant.hub_format),
    )


def load_release(
    variant: PretrainedVariant,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> LoadedModel:
    """Load a release-format variant (see the module docstring): the model (eval mode) and a config
    describing it as a zeromamba folder would."""
    path, commit = release_file(variant, revision, cache_dir, force_download, local_files_only, token)
    source = f"{variant.repo_id!r} (commit {commit}, cached as {path})"
    model = _build(variant, load_safetensors(path, source), source)
    config = _config(variant, commit)
    attach_pretrained_cfg(model, config, tag=variant.timm_tag)
    return LoadedModel(config, model, None, source)


def timm_release_file(architecture: str, tag: str) -> str | None:
    """For ``timm.create_model("vim_small.in1k", pretrained=True)``: the cached safetensors copy."""
    for v in list_pretrained():
        if v.hub_format == "vim-release" and v.architecture == architecture and v.timm_tag == tag:
            return str(release_file(v)[0])
    return None


set_release_file_resolver(timm_release_file)
