"""zeromamba: zero-shot image classification with ZeroMamba (Hou et al., AAAI 2025).

Importing the package registers its architectures with timm (``vmamba_tiny``, ``vmamba_small``,
``vmamba_base``, ``zeromamba_small``, ``zeromamba_nano``), so ``timm.create_model`` finds them too.
The map of the package is ``docs/architecture.md``.

The package root is lazy (PEP 562): ``import zeromamba`` loads neither torch nor timm, and each
name below is imported the first time it is used, so ``zeromamba --help`` and ``zeromamba list``
start in a fraction of a second. The timm registration keeps its promise either way: when timm is
already imported it happens now; otherwise a one-shot import hook runs it right after ``timm``
itself is imported (``import zeromamba, timm`` and ``import timm, zeromamba`` both work).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

from .version import __version__

# public name -> the module (relative to this package) that defines it; a module itself when None
_EXPORTS: dict[str, str | None] = {
    "AttributeMatrixError": "errors",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "DeviceError": "errors",
    "ImageError": "errors",
    "Int8UnavailableError": "errors",
    "ModelNotAvailableError": "errors",
    "NonFiniteOutputError": "errors",
    "ReadOnlyTargetError": "errors",
    "RequestTimeoutError": "errors",
    "TrainingError": "errors",
    "UnknownModelError": "errors",
    "ZeroMambaError": "errors",
    "BatchClassifier": "batch_classifier",
    "ClassificationResult": "results",
    "ImageFailure": "results",
    "Predictor": "predictor",
    "PretrainedVariant": "zoo",
    "list_pretrained": "zoo",
    "VMamba": "models",
    "ZeroMamba": "models",
    "ZeroMambaOutput": "models",
    "ExportError": "errors",
    "export": "exporter",
    "create_model": "factory",
    "from_pretrained": "factory",
    "list_models": "factory",
    "save_pretrained": "format",
    "load_model": "hub",
    "load_official": "official",
    "models": None,
    "ops": None,
}

__all__ = [
    "AttributeMatrixError",
    "BatchClassifier",
    "CheckpointError",
    "ClassificationResult",
    "ConfigError",
    "DataError",
    "DeviceError",
    "ExportError",
    "ImageError",
    "ImageFailure",
    "Int8UnavailableError",
    "ModelNotAvailableError",
    "NonFiniteOutputError",
    "ReadOnlyTargetError",
    "RequestTimeoutError",
    "Predictor",
    "PretrainedVariant",
    "TrainingError",
    "UnknownModelError",
    "VMamba",
    "ZeroMamba",
    "ZeroMambaError",
    "ZeroMambaOutput",
    "__version__",
    "create_model",
    "export",
    "from_pretrained",
    "list_models",
    "list_pretrained",
    "load_model",
    "load_official",
    "models",
    "ops",
    "save_pretrained",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    where = _EXPORTS[name]
    module = importlib.import_module(f"{__name__}.{where or name}")
    value = module if where is None else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return list(__all__)


# --- registration with timm ------------------------------------------------------------------------


def _register_with_timm() -> None:
    """Import the model files: their ``@register_model`` entry points register with timm."""
    try:
        importlib.import_module(f"{__name__}.models")
    except Exception as e:  # noqa: BLE001 - a failure here must not break the user's `import timm`
        warnings.warn(f"zeromamba could not register its architectures with timm: {e!r}", stacklevel=2)


def _release_file(architecture: str, tag: str) -> str | None:
    """The Vim release file for ``timm.create_model("vim_small.in1k", pretrained=True)``, from the Hub
    layer, imported now: at model-creation time, when every module of the package is complete."""
    release = importlib.import_module(f"{__name__}.hub.release")
    return release.timm_release_file(architecture, tag)


def _install_release_resolver() -> None:
    """Give the model files the Vim release resolver that ``pretrained=True`` needs (the model layer
    cannot import the Hub layer): a stand-in that imports the Hub layer on first use, unless it is
    imported already (it installs its own)."""
    vim = sys.modules.get(f"{__name__}.models.vim")
    if vim is not None and f"{__name__}.hub.release" not in sys.modules:
        vim.set_release_file_resolver(_release_file)


#: module -> what to run right after it has been imported (each once): timm gets the architectures,
#: the model files the release resolver (once they are complete: timm may be imported from inside them)
_AFTER_IMPORT: dict[str, Any] = {"timm": _register_with_timm, f"{__name__}.models": _install_release_resolver}


class _AfterImportLoader(importlib.abc.Loader):
    """Wraps a module's own loader: runs it, then the module's entry of :data:`_AFTER_IMPORT`."""

    def __init__(self, loader: Any, then: Any) -> None:
        self._loader = loader
        self._then = then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # give the module its real loader back before anything else sees it
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        self._then()


class _AfterImportHook(importlib.abc.MetaPathFinder):
    """One-shot finder per module of :data:`_AFTER_IMPORT`: wraps its loader with :class:`_AfterImportLoader`."""

    def __init__(self) -> None:
        self.pending = {name: then for name, then in _AFTER_IMPORT.items() if name not in sys.modules}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        then = self.pending.pop(fullname, None)
        if then is None:
            return None
        if not self.pending:
            _remove_hook()
        spec = importlib.util.find_spec(fullname)  # what the other finders return (this one no longer answers)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _AfterImportLoader(spec.loader, then)
        return spec


def _remove_hook() -> None:
    for finder in list(sys.meta_path):
        if isinstance(finder, _AfterImportHook):
            sys.meta_path.remove(finder)


if not any(isinstance(f, _AfterImportHook) for f in sys.meta_path) and _AfterImportHook().pending:
    sys.meta_path.insert(0, _AfterImportHook())
if "timm" in sys.modules:
    _register_with_timm()
