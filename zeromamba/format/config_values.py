"""The type and range of every top-level ``config.json`` value the loader uses.

``read_config`` calls :func:`check_config_values` so that a config from outside either loads
exactly as written or fails with one :class:`ConfigError` that names the field: a string where a
number belongs, an unknown ``task``, a gamma of ``1e300`` or a class-attribute file outside the
model folder are refused, not coerced.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..pretrained_variant import TASKS

__all__ = ["MAX_INPUT_SIDE", "check_config_values", "confined_file_name"]

#: the largest input side a config may ask the preprocessing for (the published models use 448)
MAX_INPUT_SIDE = 4096
#: a calibration gamma outside this range puts every seen (or every unseen) class first
GAMMA_RANGE = (-1.0, 1.0)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _strings(cfg: Mapping[str, Any], key: str, where: str) -> None:
    value = cfg.get(key)
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{where}: config.json's {key} must be a list of strings")


def confined_file_name(name: Any, where: str, key: str) -> str:
    """``name`` when it is a plain relative path inside the model folder (no absolute path, drive or
    ``..`` that leaves it), else a :class:`ConfigError`. The check is on the name, so a Hub cache's
    snapshot (whose files are links into its blob store) still loads."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ConfigError(f"{where}: config.json's {key} must name a file in the model folder, got {name!r}")
    normal = posixpath.normpath(name.replace("\\", "/"))
    if normal.startswith(("/", "../")) or normal == ".." or re.match(r"^[A-Za-z]:", normal) or normal == ".":
        raise ConfigError(
            f"{where}: config.json's {key} is {name!r}, a path outside the model folder; a config may name only "
            "files inside its own folder (e.g. 'class_attributes.safetensors')"
        )
    return normal


def _check_class_attributes(ca: Any, where: str) -> None:
    if not isinstance(ca, dict):
        raise ConfigError(f"{where}: 'class_attributes' must be an object naming its file")
    confined_file_name(ca.get("file"), where, "class_attributes.file")
    if "tensor" in ca and not isinstance(ca["tensor"], str):
        raise ConfigError(f"{where}: config.json's class_attributes.tensor must be a tensor name (a string)")
    shape = ca.get("shape")
    if shape is not None and (
        not isinstance(shape, list) or len(shape) != 2 or not all(_is_int(v) and v > 0 for v in shape)
    ):
        raise ConfigError(f"{where}: config.json's class_attributes.shape must be [classes, attributes], got {shape!r}")
    digest = ca.get("sha256")
    if digest is not None and (not isinstance(digest, str) or not _SHA256.fullmatch(digest)):
        raise ConfigError(f"{where}: config.json's class_attributes.sha256 must be 64 lowercase hex digits")


def _check_input_size(pc: Mapping[str, Any], where: str) -> None:
    size = pc.get("input_size")
    if size is None:
        return
    if (
        not isinstance(size, list)
        or len(size) != 3
        or not all(_is_int(v) for v in size)
        or not 1 <= size[0] <= 64
        or not all(1 <= v <= MAX_INPUT_SIDE for v in size[1:])
    ):
        raise ConfigError(
            f"{where}: config.json's pretrained_cfg.input_size must be [channels, H, W] with H and W in "
            f"[1, {MAX_INPUT_SIDE}], got {size!r}"
        )
    for key in ("mean", "std"):
        value = pc.get(key)
        if value is not None and (not isinstance(value, list) or not all(_is_number(v) for v in value)):
            raise ConfigError(f"{where}: config.json's pretrained_cfg.{key} must be a list of finite numbers")


def check_config_values(cfg: Mapping[str, Any], where: str) -> None:
    """Check the type (and range) of each top-level value of a config the loader reads.

    Raises:
        ConfigError: naming the first field that is wrong and what it must be.
    """
    if "zeromamba_version" in cfg and not isinstance(cfg["zeromamba_version"], str):
        raise ConfigError(f"{where}: config.json's zeromamba_version must be a string")
    task = cfg.get("task")
    if task is not None and task not in TASKS:
        raise ConfigError(f"{where}: config.json's task is {task!r}; it must be one of {', '.join(TASKS)}")
    if cfg.get("dataset") is not None and not isinstance(cfg["dataset"], str):
        raise ConfigError(f"{where}: config.json's dataset must be a string")
    gamma = cfg.get("gamma")
    if gamma is not None and (not _is_number(gamma) or not GAMMA_RANGE[0] <= gamma <= GAMMA_RANGE[1]):
        raise ConfigError(
            f"{where}: config.json's gamma must be a finite number in [{GAMMA_RANGE[0]}, {GAMMA_RANGE[1]}] "
            f"(the calibration subtracted from seen classes' probabilities), got {gamma!r}"
        )
    if "num_features" in cfg and not (_is_int(cfg["num_features"]) and cfg["num_features"] >= 0):
        raise ConfigError(f"{where}: config.json's num_features must be a non-negative integer")
    for key in ("class_names", "attribute_names"):
        _strings(cfg, key, where)
    seen = cfg.get("seen_classes")
    if seen is not None and (not isinstance(seen, list) or not all(_is_int(i) for i in seen)):
        raise ConfigError(f"{where}: config.json's seen_classes must be a list of class indices (integers)")
    extent = cfg.get("object_extent")
    if extent is not None and (not isinstance(extent, list) or len(extent) != 2 or not all(map(_is_number, extent))):
        raise ConfigError(f"{where}: config.json's object_extent must be [smallest, target], got {extent!r}")
    if cfg.get("class_attributes"):
        _check_class_attributes(cfg["class_attributes"], where)
    _check_input_size(cfg.get("pretrained_cfg") or {}, where)
