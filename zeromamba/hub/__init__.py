"""The Hugging Face Hub: resolving and downloading models (:mod:`.download`), the Vim authors'
release repositories (:mod:`.release`) and publishing (:mod:`.upload`). The folder format itself
is :mod:`zeromamba.format`."""

from .download import REPO_ID, load_model, load_pretrained, resolve_model_dir
from .release import load_release, release_cache_dir
from .upload import push_to_hub

__all__ = [
    "REPO_ID",
    "load_model",
    "load_pretrained",
    "load_release",
    "push_to_hub",
    "release_cache_dir",
    "resolve_model_dir",
]
