"""The saved model format (temporary shim while hub.py is split; see docs/architecture.md)."""

from ..hub import model_config, read_config, save_pretrained

__all__ = ["model_config", "read_config", "save_pretrained"]
