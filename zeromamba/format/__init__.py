"""The saved model format: one folder, the same locally and in a Hugging Face Hub repository.

* ``model.safetensors``: the model's state dict under this package's parameter names (the names
  timm's ``hf-hub:`` loader expects). Never a pickle.
* ``config.json``: ``zeromamba_format`` (:data:`FORMAT_VERSION`), ``architecture`` (the timm
  name), ``model_args`` (every constructor argument), ``pretrained_cfg`` (timm's preprocessing
  and head description), and for zero-shot models ``dataset``, ``gamma``, ``attribute_names``,
  ``class_names``, ``seen_classes`` (class indices) and ``class_attributes`` (a pointer to the
  matrix file with its shape and SHA-256).
* ``class_attributes.safetensors``: the ``(C, A)`` float32 class-attribute matrix. A side file, so
  timm loads ``model.safetensors`` strictly, and so ``config.json`` stays small.
* ``README.md``: the model card (:mod:`zeromamba.format.model_card`).

``config.py`` reads and describes configs, ``save.py`` writes folders, ``load.py`` reads them.
This layer returns models and matrices; it knows nothing of the predictor or of downloads.
"""

from .config import (
    CLASS_ATTRIBUTES_NAME,
    CONFIG_NAME,
    FORMAT_VERSION,
    MODEL_CARD_NAME,
    WEIGHTS_NAME,
    build_model,
    model_config,
    read_config,
)
from .load import LoadedModel, attach_pretrained_cfg, load_folder, load_safetensors
from .model_card import MODEL_CARD_TEMPLATE, render_model_card
from .save import save_pretrained

__all__ = [
    "CLASS_ATTRIBUTES_NAME",
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "MODEL_CARD_NAME",
    "MODEL_CARD_TEMPLATE",
    "WEIGHTS_NAME",
    "LoadedModel",
    "attach_pretrained_cfg",
    "build_model",
    "load_folder",
    "load_safetensors",
    "model_config",
    "read_config",
    "render_model_card",
    "save_pretrained",
]
