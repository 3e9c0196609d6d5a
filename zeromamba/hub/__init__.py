"""The Hugging Face Hub: resolving and downloading models (:mod:`.download`) and publishing them
(:mod:`.upload`). The folder format itself is :mod:`zeromamba.format`."""

from .download import REPO_ID, load_model, load_pretrained, resolve_model_dir
from .upload import push_to_hub

__all__ = ["REPO_ID", "load_model", "load_pretrained", "push_to_hub", "resolve_model_dir"]
