"""Publishing a model folder to the Hugging Face Hub (open_clip's ``push_to_hf_hub``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError, UnknownModelError
from ..format import CONFIG_NAME, FORMAT_VERSION, MODEL_CARD_NAME, WEIGHTS_NAME, read_config
from .download import REPO_ID

__all__ = ["push_to_hub"]


def _check_folder(folder: Path) -> dict[str, Any]:
    """Validate a folder before upload: the config parses and every safetensors header reads."""
    import safetensors

    cfg = read_config(folder / CONFIG_NAME)
    files = [WEIGHTS_NAME]
    if isinstance(cfg.get("class_attributes"), dict):
        files.append(str(cfg["class_attributes"]["file"]))
    for f in files:
        try:
            with safetensors.safe_open(str(folder / f), framework="pt") as fh:
                fh.keys()
        except Exception as e:
            raise CheckpointError(f"{str(folder / f)!r} is missing or not a valid safetensors file: {e}") from None
    return cfg


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a model folder to the Hugging Face Hub (creating the repository if needed).

    The folder is validated first; only ``config.json``, ``*.safetensors`` and ``README.md`` are
    uploaded. The token defaults to huggingface_hub's (``HF_TOKEN`` or ``hf auth login``).

    Returns:
        The URL of the commit.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is not a folder")
    cfg = _check_folder(folder)
    if not REPO_ID.match(repo_id):
        raise UnknownModelError(f"{repo_id!r} is not a Hub repository id (expected 'owner/name')")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        revision=revision,
        allow_patterns=[CONFIG_NAME, "*.safetensors", MODEL_CARD_NAME],
        commit_message=commit_message or f"Upload {cfg['architecture']} (zeromamba format {FORMAT_VERSION})",
    )
    return str(getattr(info, "commit_url", info))
