"""pytest plugin: timm's own ``tests/test_models.py``, unmodified, on zeromamba's architectures only.

Loaded with ``-p conftest_zeromamba`` by ``tests/models/test_timm_suite.py`` (which fetches timm's
sdist of the installed version and runs its test module in a subprocess). It does three things:

* imports zeromamba, so that its architectures are registered with timm;
* restricts the model names the suite parametrises over to zeromamba's (``timm.list_models`` and
  ``timm.list_pretrained``, which ``test_models.py`` imports, are wrapped before it is imported):
  by default the smallest architecture of each family (:data:`SMALL_ARCHITECTURES`),
  ``ZEROMAMBA_TIMM_SUITE_MODELS=all`` for every one (the large ones need > 10 GB and minutes each);
  the suite's ``module=FEAT_INTER_FILTERS`` selections (forward_intermediates, features_only through
  it, the prune contract) get the backbones that implement that interface, VMamba and Vim, as if
  their modules were in timm's list; the token-sequence models (Vim, ZeroMamba-Vim) are sorted with
  timm's ViTs, where its ``NON_STD_FILTERS`` put them; tests of one named timm model are deselected;
* marks what does not apply to our architectures: pretrained cases whose weights only the network
  has are skipped, saying so; the cases in :data:`NOT_APPLICABLE` are strict xfails with the
  reason (a strict xfail that passes fails the run, so the list cannot go stale); those in
  :data:`NOT_RUN` (TorchScript) are xfails that are not run.

``ZEROMAMBA_TIMM_SUITE_RAW=1`` applies only the restriction (no skips, no xfails): the raw counts.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

import pytest
import timm
import timm.models

import zeromamba  # noqa: F401 - registers the architectures with timm
import zeromamba.models  # noqa: F401 - the registration, also when timm was imported first
from zeromamba.zoo import AVAILABILITY
from zeromamba.zoo import list_pretrained as zoo_variants

RAW = os.environ.get("ZEROMAMBA_TIMM_SUITE_RAW", "") not in ("", "0")

#: our architectures that implement timm's forward_intermediates / prune_intermediate_layers
#: (the ZeroMamba models predict attributes; their backbones are these)
FEAT_INTER_MODULES = ("zeromamba.models.vmamba", "zeromamba.models.vim")

#: what CI runs the suite on: the smallest of each family (timm's suite builds each model several
#: times and runs it with gradients at up to 384 px; VMamba-B or Vim-B there need > 10 GB)
SMALL_ARCHITECTURES = ("vmamba_tiny", "vim_tiny", "zeromamba_nano", "zeromamba_nano_s8", "zeromamba_vim_tiny")
SELECTION = os.environ.get("ZEROMAMBA_TIMM_SUITE_MODELS", "small")

#: models whose forward_features is a token sequence, not a feature map (timm's ViTs are these)
NON_STD_MODULES = ("zeromamba.models.vim", "zeromamba.models.zeromamba_vim")

_OUTPUT = "ZeroMamba returns a ZeroMambaOutput (attributes, attention, features, logits), not a logits tensor"
_WIDTH = "ZeroMamba's output width is num_attributes, not a replaceable num_classes classifier"

#: (test function, model name pattern) -> why timm's test does not apply; each is a strict xfail
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("test_model_forward", "zeromamba_*"): f"{_OUTPUT}: the suite reads outputs.shape",
    ("test_model_default_cfgs", "zeromamba_*"): f"{_OUTPUT}: the suite reads output.dtype",
    ("test_model_forward_fx", "zeromamba_*"): f"{_OUTPUT}: the suite compares it, traced, with a tensor",
    ("test_model_backward", "zeromamba_*"): f"{_WIDTH}: the suite asks for num_classes=42",
    ("test_model_backward_fx", "zeromamba_*"): f"{_WIDTH}: the suite asks for num_classes=42",
    ("test_model_load_pretrained", "zeromamba_*"): f"{_WIDTH}: the suite asks for num_classes=5 (in_chans=1)",
    ("test_model_forward_features", "zeromamba_nano_s8*"): (
        "zeromamba_nano_s8 has two stages by design (output stride 8); the suite wants three feature levels or more"
    ),
}

#: (test function, pattern) -> why it is not run at all (an xfail that is not run: it would crash or hang)
NOT_RUN: dict[tuple[str, str], str] = {
    ("test_model_forward_torchscript", "*"): (
        "TorchScript is not supported: the CPU kernels are chosen at run time (ctypes C kernels, oneDNN "
        "fused linears, Triton) in Python; use torch.fx, torch.export or eager mode"
    ),
    ("test_model_forward_fx_torchscript", "*"): (
        "TorchScript is not supported (also not of the fx graph: it calls the Python kernel choosers)"
    ),
}

_original_list_models = timm.list_models
_original_list_pretrained = timm.list_pretrained


def _module_of(name: str) -> str:
    arch = name.split(".", 1)[0]
    if not timm.models.is_model(arch):
        return ""
    return timm.models.model_entrypoint(arch).__module__


def _selected(arch: str) -> bool:
    if SELECTION == "all":
        return True
    chosen = SMALL_ARCHITECTURES if SELECTION == "small" else tuple(SELECTION.split(","))
    return arch in chosen


def is_ours(name: object) -> bool:
    """Whether ``name`` (``arch`` or ``arch.tag``) is one of zeromamba's timm architectures, selected."""
    return isinstance(name, str) and _module_of(name).startswith("zeromamba.") and _selected(name.split(".")[0])


def _patterns(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or ())


def _restricted_list_models(filter: Any = "", module: Any = "", *args: Any, **kwargs: Any) -> list[str]:
    """timm's list_models on our selected architectures: ``filter`` / ``exclude_filters`` naming timm's
    non-standard models (``vit_*``) select / exclude ours of that kind; ``module`` (the FEAT_INTER
    list) selects the backbones with forward_intermediates."""
    non_std_asked = "vit_*" in _patterns(filter)
    non_std_excluded = "vit_*" in _patterns(kwargs.get("exclude_filters"))
    names = [n for n in _original_list_models("" if non_std_asked else filter, "", *args, **kwargs) if is_ours(n)]
    if non_std_asked or non_std_excluded:
        keep_non_std = non_std_asked
        names = [n for n in names if (_module_of(n) in NON_STD_MODULES) == keep_non_std]
    if module:  # only the FEAT_INTER selections pass one: our backbones stand in for timm's modules
        names = [n for n in names if _module_of(n) in FEAT_INTER_MODULES]
    return names


def _restricted_list_pretrained(*args: Any, **kwargs: Any) -> list[str]:
    return [n for n in _original_list_pretrained(*args, **kwargs) if is_ours(n)]


timm.list_models = _restricted_list_models
timm.list_pretrained = _restricted_list_pretrained

_PRETRAINED_TESTS = ("test_model_load_pretrained", "test_model_features_pretrained")

#: (test, pattern) skipped in the default (small) selection for their time: 24 prunes of a 24-layer
#: Vim at 224 px, each trained one step, take minutes on 2 cores (timm's CI leaves the test out too)
SLOW_IN_SMALL = {("test_prune_intermediate_layers_contract", "vim_*")}


def _weights_state(model_name: str) -> str:
    """Where the weights of ``model_name`` (``arch.tag``, or ``arch`` for its default tag) are: the
    zoo's availability (``shipped``, ``cached``, ``hub``, ``unpublished``), decided without the network."""
    by_timm_name = {v.timm_name: v for v in zoo_variants()}
    if model_name in by_timm_name:
        return by_timm_name[model_name].availability()
    cfg = timm.models.get_pretrained_cfg(model_name)  # an untagged name: its default tag's cfg
    if cfg is not None and cfg.file and Path(cfg.file).is_file():
        return "shipped"
    for variant in by_timm_name.values():
        if cfg is not None and cfg.hf_hub_id == variant.repo_id:
            return variant.availability()
    return "not in the zoo"


def pytest_configure(config: pytest.Config) -> None:
    # timm marks its tests with pytest-timeout's marker; without the plugin it is only a label
    config.addinivalue_line("markers", "timeout(seconds): pytest-timeout's per-test limit")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        model_name = callspec.params.get("model_name") if callspec is not None else None
        if not is_ours(model_name):  # a test of one named timm model, or an empty selection
            drop.append(item)
            continue
        keep.append(item)
        if RAW:
            continue
        function = item.originalname  # type: ignore[attr-defined]
        state = _weights_state(model_name) if function in _PRETRAINED_TESTS else ""
        if function in _PRETRAINED_TESTS and state not in ("shipped", "cached"):
            item.add_marker(
                pytest.mark.skip(
                    reason=f"needs the network: {model_name}'s weights are {state!r}: {AVAILABILITY.get(state, '')}"
                )
            )
            continue
        if SELECTION == "small" and any(
            test == function and fnmatch.fnmatchcase(model_name, pattern) for test, pattern in SLOW_IN_SMALL
        ):
            item.add_marker(
                pytest.mark.skip(reason="slow: runs with ZEROMAMBA_TIMM_SUITE_MODELS=all or naming the model")
            )
            continue
        for table, run in ((NOT_RUN, False), (NOT_APPLICABLE, True)):
            reason = next(
                (
                    r
                    for (test, pattern), r in table.items()
                    if test == function and fnmatch.fnmatchcase(model_name, pattern)
                ),
                None,
            )
            if reason is not None:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True, run=run))
                break
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
