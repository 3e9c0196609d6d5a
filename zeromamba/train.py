"""Training ZeroMamba with the paper's recipe, on one process or many (``torchrun``).

Python::

    from zeromamba.train import train

    result = train({"dataset": "CUB", "data_root": "data/xlsa17/data", "image_root": "data/CUB",
                    "embeddings": "w2v/CUB_attribute.npy", "output_dir": "runs/cub"})
    print(result.test["harmonic"], result.model_dir)

Command line: ``zeromamba train --dataset CUB --data-root ... --image-root ... --output runs/cub``,
and the same command under ``torchrun --nproc_per_node 8 -m zeromamba train ...``.

Configuration: defaults < the dataset's preset (:data:`PRESETS`) < a JSON/TOML file (``--config``)
< command-line options. Every key is a field of :class:`TrainConfig`.

Model selection (``selection``):

* ``"validation"`` (default): train on xlsa17's ``train`` classes, evaluate each epoch on
  held-out images of those classes + the ``val`` classes (as unseen), pick the epoch and gamma
  there, retrain on ``trainval`` for that many epochs, and evaluate the test split once. No test
  image is used before the final evaluation.
* ``"authors"``: the authors' protocol: evaluate the test split every epoch and keep the best epoch
  (by H at the preset gamma; the best-CZSL epoch is exported too). Reported numbers are then
  selected on the test set, and are labelled so.
* ``"last"``: train ``epochs`` epochs, evaluate the test split once at the preset gamma.

Output folder: ``config.json`` (the resolved configuration), ``log.jsonl`` (one JSON object per
epoch: losses, learning rates, metrics), ``checkpoints/`` (``latest.json`` points at the newest
complete checkpoint; each checkpoint is a folder written under a temporary name and renamed, so an
interrupted run never leaves a half-written one), ``model/`` (the final weights in the zoo format:
``zeromamba.from_pretrained("runs/cub/model")``), ``result.json``, ``test_curve.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from .data import ZSLData, add_data_arguments, build_transform, load_attribute_embeddings, load_dataset
from .data import selection_splits as make_selection_splits
from .errors import CheckpointError, ConfigError, TrainingError, ZeroMambaError
from .evaluate import amp_dtype, autocast, evaluate_attributes, predict_attributes, resolve_device
from .metrics import ZSLMetrics, format_table, plot_curve, save_json
from .models.zeromamba import ZeroMamba, checkpoint_filter_fn, class_scores

__all__ = [
    "PRESETS",
    "SELECTION_LABELS",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "compute_loss",
    "load_config_file",
    "make_optimizer",
    "register_cli",
    "resolve_config",
    "train",
]

#: VMamba-S, the backbone of the published model (drop-path 0.3 as in the VMamba config the authors load)
VMAMBA_SMALL: dict[str, Any] = {"embed_dim": 96, "depths": [2, 2, 15, 2], "d_state": 1, "ssm_ratio": 2.0}

#: Per-dataset values from the paper / the authors' scripts (FLO: not run by the authors; a guess)
PRESETS: dict[str, dict[str, Any]] = {
    "CUB": {"l1_weight": 1.0, "gamma": 0.3},
    "SUN": {"l1_weight": 0.2, "gamma": 0.35},
    "AWA2": {"l1_weight": 0.0, "gamma": 0.98},
    "FLO": {"l1_weight": 0.0, "gamma": 0.5},
    "folder": {"l1_weight": 0.0, "gamma": 0.5},
}

SELECTION_LABELS: dict[str, str] = {
    "validation": "epoch and gamma chosen on a validation split of the seen classes; test evaluated once",
    "authors": "authors' protocol: epoch chosen on the test set (best H at the preset gamma; CZSL separately)",
    "last": "no selection: the last epoch at the preset gamma; test evaluated once",
}

# test-only: each rank writes rank<r>.json (parameter checksum + metrics) into this folder
_RANK_REPORT_ENV = "ZEROMAMBA_TEST_RANK_REPORT"


def _match_depthwise_grad_layout(model: nn.Module) -> None:
    """Give depthwise conv weights ``(C, 1, k, k)`` channels-last strides.

    The blocks run channels-last, so these weights' gradients come out with channels-last
    strides; a weight with the same strides lets DDP's gradient buckets take them without a
    strided copy (and without its "grad strides do not match" warning). Same memory, same values.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.weight.shape[1] == 1:
            w = m.weight.data
            kh, kw = w.shape[2:]
            # explicit strides: .contiguous(channels_last) keeps these as they are (a size-1 dim)
            m.weight.data = torch.empty_strided(w.shape, (kh * kw, 1, kw, 1), dtype=w.dtype, device=w.device).copy_(w)


@dataclass
class TrainConfig:
    """Everything a training run needs. Field names are the config-file keys (``--set key=value``).

    Data: ``dataset`` (CUB, SUN, AWA2, FLO or ``folder``), ``data_root`` (xlsa17 ``data`` folder),
    ``image_root``, ``strip_components``/``path_regex`` (xlsa17 path rule), ``attributes_csv`` and
    ``unseen_classes`` (own data), ``embeddings`` (word2vec attribute vectors, ``A x 300``;
    ``allow_pickle`` to read the authors' ``.pkl``).

    Model: ``init`` (ImageNet backbone: a zoo name such as ``vmamba-small``, a local VMamba release
    ``.pth``/``.safetensors``, or ``"none"``), ``model`` (architecture arguments of
    :class:`~zeromamba.models.ZeroMamba`), ``drop_path_rate``, ``scan_backend``, ``grad_checkpointing``.

    Optimisation (the paper's recipe): SGD, ``momentum`` 0.9, ``weight_decay`` 1e-3; ``lr`` for the
    backbone + SLP, ``lr_global`` for the GRL head, ``lr_fusion`` for the fusion MLP; MultiStepLR
    ``milestones`` x ``lr_decay``; ``batch_size`` is the global batch (split over processes);
    loss ``CE + l1_weight * L1``; ``gamma`` the calibrated-stacking gamma.
    """

    dataset: str = "CUB"
    data_root: str | None = None
    image_root: str | None = None
    strip_components: int | None = None
    path_regex: str | None = None
    attributes_csv: str | None = None
    unseen_classes: str | None = None
    test_seen_fraction: float = 0.2
    val_class_fraction: float = 0.2
    embeddings: str | None = None
    allow_pickle: bool = False
    output_dir: str = "runs/zeromamba"
    init: str = "vmamba-small"
    model: dict[str, Any] = field(default_factory=lambda: dict(VMAMBA_SMALL))
    drop_path_rate: float = 0.3
    scan_backend: str = "auto"
    grad_checkpointing: bool = False
    image_size: int = 448
    batch_size: int = 32
    epochs: int = 100
    lr: float = 1e-3
    lr_global: float = 1e-3
    lr_fusion: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 1e-3
    milestones: list[int] = field(default_factory=lambda: [10, 20, 30, 40])
    lr_decay: float = 0.5
    l1_weight: float = 1.0
    gamma: float = 0.3
    seed: int = 0
    amp: str = "auto"
    selection: str = "validation"
    select_metric: str = "harmonic"
    holdout_fraction: float = 0.2
    retrain: bool = True
    eval_every: int = 1
    eval_batch_size: int = 64
    num_workers: int = 4
    device: str = "auto"
    progress: str = "auto"
    max_steps_per_epoch: int | None = None
    resume: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# keys that may differ on --resume without changing the run
_RESUME_FREE = {"resume", "num_workers", "device", "progress", "eval_batch_size", "data_root", "image_root"}


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON (``.json``) or TOML (``.toml``) configuration file into a dict."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r}")
    try:
        if path.endswith(".toml"):
            try:
                import tomllib  # Python 3.11+
            except ModuleNotFoundError:  # pragma: no cover - 3.10
                try:
                    import tomli as tomllib  # type: ignore[no-redef]
                except ModuleNotFoundError:
                    raise ConfigError(f"{path!r}: TOML needs Python 3.11+ (or tomli); use JSON") from None
            with open(path, "rb") as f:
                obj = tomllib.load(f)
        else:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"cannot parse config file {path!r}: {e}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{path!r}: the configuration must be a table / JSON object")
    return obj


def _coerce(key: str, value: Any) -> Any:
    if value is None:
        return None
    default = _FIELDS[key].default
    kind = type(default) if default is not None and default is not dataclasses.MISSING else None
    try:
        if key in ("strip_components", "max_steps_per_epoch"):
            return int(value)
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if key == "milestones":
            return [int(v) for v in value]
        if key == "model":
            if not isinstance(value, Mapping):
                raise ValueError(value)
            return dict(value)
        if kind is str or key in ("data_root", "image_root", "path_regex", "attributes_csv", "unseen_classes"):
            return str(value)
        if key == "embeddings":
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key {key!r}: bad value {value!r}") from None
    return value


def resolve_config(config: TrainConfig | Mapping[str, Any] | str | os.PathLike) -> TrainConfig:
    """Turn a :class:`TrainConfig`, a mapping of overrides, or a config-file path into a checked config.

    A mapping starts from the defaults and the dataset's preset. With ``resume`` and an
    ``output_dir`` that holds a run, it starts from that run's saved ``config.json`` instead.
    """
    if isinstance(config, TrainConfig):
        cfg = config
    else:
        given = load_config_file(config) if isinstance(config, (str, os.PathLike)) else dict(config)
        unknown = sorted(set(given) - set(_FIELDS))
        if unknown:
            from difflib import get_close_matches

            hints = [
                f"{k} (did you mean {get_close_matches(k, _FIELDS, 1)[0]}?)" if get_close_matches(k, _FIELDS, 1) else k
                for k in unknown
            ]
            raise ConfigError(f"unknown config keys: {', '.join(hints)}")
        given = {k: _coerce(k, v) for k, v in given.items()}
        saved = Path(given.get("output_dir") or TrainConfig.output_dir) / "config.json"
        if given.get("resume") and saved.is_file():
            base = load_config_file(saved)
            base = {k: _coerce(k, v) for k, v in base.items() if k in _FIELDS}
            changed = {k for k, v in given.items() if k in base and base[k] != v and k not in _RESUME_FREE}
            if changed:
                warnings.warn(f"--resume with changed settings {sorted(changed)}: the new values apply", stacklevel=2)
            values = {**base, **given}
        else:
            dataset = str(given.get("dataset", TrainConfig.dataset))
            preset = PRESETS.get(dataset.upper(), PRESETS["folder"] if dataset.lower() == "folder" else {})
            values = {**preset, **given}
        cfg = TrainConfig(**values)
    _check_config(cfg)
    return cfg


def _check_config(cfg: TrainConfig) -> None:
    problems = []
    if cfg.selection not in SELECTION_LABELS:
        problems.append(f"selection must be one of {', '.join(SELECTION_LABELS)} (got {cfg.selection!r})")
    if cfg.select_metric not in ("harmonic", "czsl"):
        problems.append(f"select_metric must be 'harmonic' or 'czsl' (got {cfg.select_metric!r})")
    for key in ("epochs", "batch_size", "image_size", "eval_every", "eval_batch_size"):
        if getattr(cfg, key) < 1:
            problems.append(f"{key} must be at least 1 (got {getattr(cfg, key)})")
    for key in ("lr", "lr_global", "lr_fusion", "weight_decay", "momentum", "l1_weight", "num_workers"):
        v = getattr(cfg, key)
        if not math.isfinite(v) or v < 0:
            problems.append(f"{key} must be a finite non-negative number (got {v})")
    if not math.isfinite(cfg.gamma):
        problems.append(f"gamma must be finite (got {cfg.gamma})")
    if cfg.amp not in ("auto", "bf16", "fp16", "off"):
        problems.append(f"amp must be auto, bf16, fp16 or off (got {cfg.amp!r})")
    if cfg.progress not in ("auto", "on", "off"):
        problems.append(f"progress must be auto, on or off (got {cfg.progress!r})")
    if cfg.max_steps_per_epoch is not None and cfg.max_steps_per_epoch < 1:
        problems.append("max_steps_per_epoch must be at least 1")
    if problems:
        raise ConfigError("bad training configuration: " + "; ".join(problems))


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        output_dir: the run folder; ``model_dir``: the final weights (zoo format).
        selection: the protocol and what it means (:data:`SELECTION_LABELS`).
        best_epoch: the epoch the final weights come from (or were retrained to).
        gamma: the gamma saved with the model and used for the test numbers.
        test: test metrics (fractions, see :class:`~zeromamba.metrics.ZSLMetrics`), without the curve.
        validation: the validation metrics at the chosen epoch (``selection="validation"``).
        extra_models: other exported models (the best-CZSL epoch under the authors' protocol).
        history: one record per trained epoch (what ``log.jsonl`` holds).
    """

    output_dir: str
    model_dir: str
    selection: str
    best_epoch: int
    gamma: float
    test: dict[str, Any]
    validation: dict[str, Any] | None = None
    extra_models: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- model, optimiser, loss --------------------------------------------------------------------


def build_model(
    cfg: TrainConfig, num_attributes: int, embeddings: torch.Tensor | None = None, load_init: bool = True
) -> ZeroMamba:
    """A :class:`ZeroMamba` for ``cfg``, its SLP initialised from ``embeddings`` (row-normalised as
    the authors do) and its backbone from ``cfg.init``."""
    args = dict(cfg.model)
    if "depths" in args:
        args["depths"] = tuple(args["depths"])
    args.setdefault("drop_path_rate", cfg.drop_path_rate)
    args.setdefault("scan_backend", cfg.scan_backend)
    emb = F.normalize(embeddings.float(), dim=1) if embeddings is not None else None
    if emb is not None:
        args["semantic_dim"] = int(emb.shape[1])
    try:
        model = ZeroMamba(num_attributes=num_attributes, attribute_embeddings=emb, **args)
    except TypeError as e:
        raise ConfigError(f"bad model arguments {cfg.model}: {e}") from None
    if load_init:
        init_backbone(model, cfg.init)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def init_backbone(model: ZeroMamba, init: str | None) -> None:
    """Load ImageNet weights into ``model.backbone``.

    ``init``: ``"none"`` (random), a local file (an authors' VMamba release ``.pth`` read with
    ``weights_only``, or a ``.safetensors`` state dict), or a name ``zeromamba.from_pretrained``
    resolves (zoo name such as ``vmamba-small``, Hub repository, or a folder in the zoo format).
    """
    if not init or str(init).lower() == "none":
        warnings.warn("init='none': the backbone starts from random weights, not ImageNet", stacklevel=2)
        return
    from .official import load_state_dict_strict, read_official_state_dict

    init = str(init)
    if os.path.isfile(init):
        if init.endswith(".safetensors"):
            from safetensors.torch import load_file

            try:
                sd = load_file(init)
            except Exception as e:
                raise CheckpointError(f"cannot read {init!r}: {e}") from None
        else:
            sd = read_official_state_dict(init)
    elif init.endswith((".pth", ".pt", ".bin", ".safetensors")) and not os.path.isdir(init):
        raise CheckpointError(f"init checkpoint not found: {init!r}")
    else:
        import zeromamba

        sd = zeromamba.from_pretrained(init).model.state_dict()
    mapped = checkpoint_filter_fn(dict(sd), model)
    backbone = {k[len("backbone.") :]: v for k, v in mapped.items() if k.startswith("backbone.")}
    load_state_dict_strict(model.backbone, backbone, f"init {init!r}")


def make_optimizer(model: ZeroMamba, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with the paper's three learning-rate groups: backbone + SLP, GRL head, fusion MLP."""
    groups: dict[str, list[nn.Parameter]] = {"backbone_slp": [], "global_head": [], "fusion": []}
    for name, p in model.named_parameters():
        if name.startswith(("backbone.", "slp.")):
            groups["backbone_slp"].append(p)
        elif name.startswith("global_head."):
            groups["global_head"].append(p)
        elif name.startswith("fusion."):
            groups["fusion"].append(p)
        else:  # pragma: no cover - a new module would need a group
            raise TrainingError(f"parameter {name!r} belongs to no learning-rate group")
    lrs = {"backbone_slp": cfg.lr, "global_head": cfg.lr_global, "fusion": cfg.lr_fusion}
    return torch.optim.SGD(
        [{"params": ps, "lr": lrs[n], "name": n} for n, ps in groups.items()],
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )


def compute_loss(
    attributes: torch.Tensor, targets: torch.Tensor, seen_attributes: torch.Tensor, l1_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``CE(fused @ att_seen.T, y) + l1_weight * L1(fused, att_seen[y])`` -> ``(loss, ce, l1)``.

    ``targets`` index the rows of ``seen_attributes``.
    """
    attributes = attributes.float()
    ce = F.cross_entropy(class_scores(attributes, seen_attributes), targets)
    l1 = F.l1_loss(attributes, seen_attributes[targets])
    return ce + l1_weight * l1, ce, l1


# --- distributed ---------------------------------------------------------------------------------


@dataclass
class _Dist:
    world: int
    rank: int
    device: torch.device
    owns_group: bool

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        on = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor(values, dtype=torch.float64, device=on)
        dist.all_reduce(t)
        return t.tolist()

    def all_true(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        on = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=on)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())


def _setup_distributed(device: str) -> _Dist:
    """Join the process group torchrun describes (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``); NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return _Dist(1, 0, dev, False)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
        owns = True
    return _Dist(dist.get_world_size(), dist.get_rank(), dev, owns)


# --- checkpoints ---------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), int(n[2]), int(n[3]), float(n[4])))
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class _Checkpoints:
    """``checkpoints/<phase>-epoch<NNNN>/{model.safetensors, state.pt}`` + ``latest.json``.

    A checkpoint folder is written under a temporary name and renamed when complete; then
    ``latest.json`` is replaced atomically. Folders that neither ``latest.json`` nor a best-epoch
    record points to are deleted.
    """

    def __init__(self, root: Path):
        self.root = root

    def latest(self) -> dict[str, Any] | None:
        p = self.root / "latest.json"
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"cannot read {p}: {e}") from None

    def save(self, phase: str, epoch: int, model: nn.Module, state: dict[str, Any], keep: set[str]) -> str:
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{phase}-epoch{epoch:04d}"
        tmp = self.root / f".tmp-{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        torch.save(state, tmp / "state.pt")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        final = self.root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(self.root)
        save_json({"phase": phase, "epoch": epoch, "dir": name}, self.root / "latest.json")
        for d in self.root.iterdir():
            if d.is_dir() and d.name != name and d.name not in keep and not d.name.startswith(".tmp-"):
                shutil.rmtree(d, ignore_errors=True)
        return name

    def load_state(self, name: str) -> dict[str, Any]:
        path = self.root / name / "state.pt"
        if not path.is_file():
            raise CheckpointError(f"checkpoint state not found: {path}")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"cannot read {path}: {e}") from None

    def load_weights(self, name: str) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        path = self.root / name / "model.safetensors"
        if not path.is_file():
            raise CheckpointError(f"checkpoint weights not found: {path}")
        try:
            return load_file(str(path))
        except Exception as e:
            raise CheckpointError(f"cannot read {path} (corrupt or truncated?): {e}") from None


# --- the run -------------------------------------------------------------------------------------


@dataclass
class _EvalSpec:
    name: str  # "val" or "test"
    indices: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray


@dataclass
class _PhaseResult:
    model: ZeroMamba
    history: list[dict[str, Any]]
    best: dict[str, Any]


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    return obj


class _Run:
    def __init__(self, cfg: TrainConfig, env: _Dist):
        self.cfg = cfg
        self.env = env
        self.out = Path(cfg.output_dir)
        self.ckpt = _Checkpoints(self.out / "checkpoints")
        self.amp = amp_dtype(cfg.amp, env.device)
        if cfg.batch_size % env.world:
            raise ConfigError(f"batch_size {cfg.batch_size} (global) is not divisible by {env.world} processes")
        self.local_batch = cfg.batch_size // env.world
        show = cfg.progress == "on" or (cfg.progress == "auto" and sys.stderr.isatty())
        self.progress = show and env.main
        self.data: ZSLData = load_dataset(
            cfg.dataset,
            cfg.image_root,
            cfg.data_root,
            strip_components=cfg.strip_components,
            path_regex=cfg.path_regex,
            attributes_csv=cfg.attributes_csv,
            unseen_classes=cfg.unseen_classes,
            test_seen_fraction=cfg.test_seen_fraction,
            val_class_fraction=cfg.val_class_fraction,
        )
        self.embeddings = None
        if cfg.embeddings:
            self.embeddings = load_attribute_embeddings(cfg.embeddings, self.data.num_attributes, cfg.allow_pickle)
        elif env.main:
            warnings.warn("no attribute embeddings given: the SLP's semantic matrix starts random", stacklevel=3)
        self.latest = self.ckpt.latest() if cfg.resume else None
        if not cfg.resume and self.ckpt.latest() is not None:
            raise TrainingError(
                f"{self.out} already holds a run (checkpoints/latest.json); continue it with --resume "
                "or choose another output folder"
            )
        if env.main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_json(cfg.to_dict(), self.out / "config.json")
        env.barrier()

    # -- logging
    def log(self, record: dict[str, Any]) -> None:
        if not self.env.main:
            return
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(_finite_or_none(record)) + "\n")

    def _trim_log(self, phase: str, epoch: int) -> None:
        # an epoch logged but not checkpointed before an interruption is trained again: drop its line
        path = self.out / "log.jsonl"
        if not self.env.main or not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines()
        keep = []
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the interruption
            if rec.get("phase") == phase and rec.get("epoch", 0) > epoch:
                continue
            keep.append(line)
        if len(keep) != len(lines):
            tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
            tmp.write_text("".join(k + "\n" for k in keep), encoding="utf-8")
            os.replace(tmp, path)

    def say(self, text: str) -> None:
        if self.env.main:
            print(text, flush=True)

    # -- phases
    def run(self) -> TrainResult:
        cfg, data = self.cfg, self.data
        trainval = data.splits["trainval"]
        test = _EvalSpec(
            "test",
            np.concatenate([data.splits["test_seen"], data.splits["test_unseen"]]),
            data.seen_classes,
            data.unseen_classes,
        )
        extra: dict[str, str] = {}
        validation = None
        if cfg.selection == "validation":
            sel = make_selection_splits(data, cfg.holdout_fraction, cfg.seed)
            val = _EvalSpec("val", np.concatenate([sel.val_seen, sel.val_unseen]), sel.seen, sel.unseen)
            sel_path = self.out / "selection.json"
            if self.latest is not None and self.latest["phase"] == "final" and sel_path.is_file():
                chosen = json.loads(sel_path.read_text())
            else:
                self.say(f"selection on validation: {len(sel.seen)} train classes, {len(sel.unseen)} val classes")
                r1 = self._phase("select", sel.train, sel.seen, cfg.epochs, val, track="val")
                best = r1.best.get("main")
                if best is None:
                    raise TrainingError("no validation result to choose an epoch from")
                chosen = {
                    "epoch": best["epoch"],
                    "gamma": best["metrics"]["best_gamma"],
                    "val": best["metrics"],
                    "checkpoint": best["dir"],
                }
                if self.env.main:
                    save_json(chosen, sel_path)
                self.env.barrier()
                self.latest = None
            validation = chosen["val"]
            gamma, best_epoch = float(chosen["gamma"]), int(chosen["epoch"])
            self.say(f"chosen on validation: epoch {best_epoch}, gamma {gamma:.3f}")
            if cfg.retrain:
                r2 = self._phase("final", trainval, data.seen_classes, best_epoch, None, track=None)
                model = r2.model
                history = r2.history
            else:
                model = self._model_from(chosen["checkpoint"])
                history = []
            test_metrics = self._evaluate(model, test, gamma)
        elif cfg.selection == "authors":
            r = self._phase("final", trainval, data.seen_classes, cfg.epochs, test, track="test")
            best = r.best["main"]
            model = self._model_from(best["dir"])
            gamma, best_epoch = cfg.gamma, int(best["epoch"])
            test_metrics = self._evaluate(model, test, gamma)
            history = r.history
            czsl = r.best.get("czsl")
            if czsl is not None:
                extra["best_czsl"] = self._export(self._model_from(czsl["dir"]), "model-best-czsl", gamma)
        else:
            r = self._phase("final", trainval, data.seen_classes, cfg.epochs, None, track=None)
            model, gamma, best_epoch, history = r.model, cfg.gamma, cfg.epochs, r.history
            test_metrics = self._evaluate(model, test, gamma)
        model_dir = self._export(model, "model", gamma)
        label = SELECTION_LABELS[cfg.selection]
        table = format_table(test_metrics, title=f"{data.name} test ({label})")
        self.say(table)
        result = TrainResult(
            output_dir=str(self.out),
            model_dir=model_dir,
            selection=f"{cfg.selection}: {label}",
            best_epoch=best_epoch,
            gamma=gamma,
            test=test_metrics.to_dict(include_curve=False),
            validation=validation,
            extra_models=extra,
            history=history,
        )
        self.log({"event": "test", "selection": cfg.selection, "epoch": best_epoch, "test": result.test})
        if self.env.main:
            save_json(
                _finite_or_none({**result.to_dict(), "test_curve": test_metrics.curve.to_dict()}),
                self.out / "result.json",
            )
            marks = {
                f"gamma {gamma:.3f}": (test_metrics.seen, test_metrics.unseen),
                f"best on test {test_metrics.best_gamma:.3f}": (test_metrics.best_seen, test_metrics.best_unseen),
            }
            plot_curve(test_metrics.curve, self.out / "test_curve.png", title=f"{data.name} test", marks=marks)
        self._rank_report(model, test_metrics)
        return result

    def _model_from(self, checkpoint: str) -> ZeroMamba:
        model = build_model(self.cfg, self.data.num_attributes, self.embeddings, load_init=False)
        model.load_state_dict(self.ckpt.load_weights(checkpoint))
        return model.to(self.env.device)

    def _phase(
        self,
        phase: str,
        train_idx: np.ndarray,
        seen: np.ndarray,
        epochs: int,
        spec: _EvalSpec | None,
        track: str | None,
    ) -> _PhaseResult:
        cfg, env = self.cfg, self.env
        _seed_everything(cfg.seed)
        model = build_model(cfg, self.data.num_attributes, self.embeddings, load_init=self.latest is None)
        model.to(env.device)
        optimizer = make_optimizer(model, cfg)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.lr_decay)
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        start, history, best = 0, [], {}
        if self.latest is not None and self.latest["phase"] == phase:
            name = self.latest["dir"]
            state = self.ckpt.load_state(name)
            model.load_state_dict(self.ckpt.load_weights(name))
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            _set_rng_state(state["rng"])
            start, history, best = int(state["epoch"]), list(state["history"]), dict(state["best"])
            self.say(f"resumed {phase} from {name} (epoch {start} of {epochs})")
            self._trim_log(phase, start)
        elif self.latest is not None:
            init_backbone(model, cfg.init)  # the checkpoint is of another phase: start this one afresh
        self.latest = None
        net: nn.Module = model
        if env.world > 1:
            _match_depthwise_grad_layout(model)
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[env.device.index] if env.device.type == "cuda" else None
            )
        lut = torch.full((self.data.num_classes,), -1, dtype=torch.long)
        lut[torch.as_tensor(seen, dtype=torch.long)] = torch.arange(len(seen))
        seen_att = self.data.class_attributes[torch.as_tensor(seen, dtype=torch.long)].to(env.device)
        ds = self.data.dataset(train_idx, build_transform(cfg.image_size, train=True))
        sampler = DistributedSampler(ds, num_replicas=env.world, rank=env.rank, shuffle=True, seed=cfg.seed)
        loader = DataLoader(
            ds,
            batch_size=self.local_batch,
            sampler=sampler,
            num_workers=cfg.num_workers,
            pin_memory=env.device.type == "cuda",
            persistent_workers=False,
        )
        keep = {b["dir"] for b in best.values()}
        for epoch in range(start, epochs):
            sampler.set_epoch(epoch)
            t0 = time.time()
            lrs = [g["lr"] for g in optimizer.param_groups]
            stats = self._train_epoch(net, loader, optimizer, scaler, lut, seen_att, phase, epoch, epochs)
            scheduler.step()
            record: dict[str, Any] = {"phase": phase, "epoch": epoch + 1, "lr": lrs, **stats}
            if spec is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == epochs):
                m = self._evaluate(model, spec, cfg.gamma)
                record[spec.name] = m.to_dict(include_curve=False)
                self._update_best(best, m, epoch + 1, phase, track)
            record["time_s"] = round(time.time() - t0, 3)
            history.append(record)
            self.log(record)
            self.say(_epoch_line(record, spec.name if spec else None))
            state = {
                "phase": phase,
                "epoch": epoch + 1,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "rng": _rng_state(),
                "history": history,
                "best": best,
                "world_size": env.world,
            }
            keep = {b["dir"] for b in best.values()}
            if env.main:
                self.ckpt.save(phase, epoch + 1, model, state, keep)
            env.barrier()
        return _PhaseResult(model=model, history=history, best=best)

    def _update_best(self, best: dict[str, Any], m: ZSLMetrics, epoch: int, phase: str, track: str | None) -> list[str]:
        if track is None:
            return []
        name = f"{phase}-epoch{epoch:04d}"
        metrics = m.to_dict(include_curve=False)
        if track == "val":  # gamma is tuned on validation too
            score = m.best_harmonic if self.cfg.select_metric == "harmonic" else m.czsl
            keys = {"main": score}
        else:  # authors: H at the fixed gamma, and CZSL separately
            keys = {"main": m.harmonic, "czsl": m.czsl}
        improved = []
        for key, score in keys.items():
            old = best.get(key)
            # the authors keep the later of equal CZSL epochs (<=) and the earlier of equal H epochs (<)
            later_wins = track == "test" and key == "czsl"
            better = old is None or score > old["score"] or (later_wins and score == old["score"])
            if math.isfinite(score) and better:
                best[key] = {"epoch": epoch, "score": float(score), "dir": name, "metrics": _finite_or_none(metrics)}
                improved.append(key)
        return improved

    def _train_epoch(
        self,
        net: nn.Module,
        loader: DataLoader,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        lut: torch.Tensor,
        seen_att: torch.Tensor,
        phase: str,
        epoch: int,
        epochs: int,
    ) -> dict[str, Any]:
        cfg, env = self.cfg, self.env
        net.train()
        sums = [0.0, 0.0, 0.0, 0.0]  # loss, ce, l1 (image-weighted), images
        steps = len(loader) if cfg.max_steps_per_epoch is None else min(len(loader), cfg.max_steps_per_epoch)
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"{phase} {epoch + 1}/{epochs}", disable=not self.progress, leave=False)
        for step, (x, y, _) in enumerate(loader):
            if step >= steps:
                break
            x = x.to(env.device, non_blocking=True)
            target = lut[y].to(env.device, non_blocking=True)
            if bool((target < 0).any()):
                raise TrainingError("a training image's class is not among the seen classes")
            with autocast(env.device, self.amp):
                out = net(x)
            loss, ce, l1 = compute_loss(out.attributes, target, seen_att, cfg.l1_weight)
            if not env.all_true(bool(torch.isfinite(loss.detach()).item())):
                latest = self.ckpt.latest()
                kept = (
                    f"the last good checkpoint is kept: {self.ckpt.root / latest['dir']}"
                    if latest
                    else ("no checkpoint had been written yet")
                )
                raise TrainingError(
                    f"non-finite loss ({loss.item()}) in {phase} epoch {epoch + 1}, step {step + 1}: training stopped; "
                    f"{kept}. Lower the learning rate or turn AMP off (--amp off), then continue with --resume."
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            n = len(y)
            sums[0] += loss.item() * n
            sums[1] += ce.item() * n
            sums[2] += l1.item() * n
            sums[3] += n
            bar.update(1)
            bar.set_postfix(loss=f"{sums[0] / sums[3]:.4f}")
        bar.close()
        tot = env.all_sum(sums)
        n = max(tot[3], 1.0)
        return {"loss": tot[0] / n, "ce": tot[1] / n, "l1": tot[2] / n, "images": int(tot[3]), "steps": steps}

    def _evaluate(self, model: nn.Module, spec: _EvalSpec, gamma: float) -> ZSLMetrics:
        ds = self.data.dataset(spec.indices, build_transform(self.cfg.image_size, train=False))
        attrs, labels = predict_attributes(
            model,
            ds,
            self.cfg.eval_batch_size,
            self.env.device,
            self.amp,
            self.cfg.num_workers,
            progress=self.progress,
            desc=f"evaluate {spec.name}",
        )
        return evaluate_attributes(attrs, labels, self.data.class_attributes, spec.seen, spec.unseen, gamma)

    def _export(self, model: ZeroMamba, name: str, gamma: float) -> str:
        """Write the zoo format (``model.safetensors`` + ``config.json``) via the Predictor."""
        path = self.out / name
        if self.env.main:
            from .predictor import Predictor

            data = self.data
            cpu = build_model(self.cfg, data.num_attributes, self.embeddings, load_init=False)
            cpu.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
            predictor = Predictor(
                cpu,
                class_attributes=data.class_attributes,
                class_names=data.class_names,
                seen=data.seen_mask(),
                gamma=float(gamma),
                attribute_names=data.attribute_names,
                preprocess={"input_size": (3, self.cfg.image_size, self.cfg.image_size)},
            )
            try:
                from .hub import save_pretrained

                save_pretrained(predictor, path, dataset=data.name)
            except ImportError:  # pragma: no cover - the hub module is part of the package
                predictor.save_pretrained(path)
        self.env.barrier()
        return str(path)

    def _rank_report(self, model: nn.Module, metrics: ZSLMetrics) -> None:
        folder = os.environ.get(_RANK_REPORT_ENV)
        if not folder:
            return
        with torch.no_grad():
            params = [p.detach().double().cpu() for p in model.parameters()]
            checksum = float(sum(p.sum() for p in params))
            abs_sum = float(sum(p.abs().sum() for p in params))
        save_json(
            {
                "rank": self.env.rank,
                "world": self.env.world,
                "param_sum": checksum,
                "param_abs_sum": abs_sum,
                "test": _finite_or_none(metrics.to_dict(include_curve=False)),
            },
            Path(folder) / f"rank{self.env.rank}.json",
        )


def _epoch_line(record: dict[str, Any], split: str | None) -> str:
    text = (
        f"[{record['phase']}] epoch {record['epoch']}: loss {record['loss']:.4f} "
        f"(ce {record['ce']:.4f}, l1 {record['l1']:.4f})"
    )
    if split and split in record:
        m = record[split]

        def pct(v: Any) -> str:
            return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

        text += (
            f" | {split}: CZSL {pct(m['czsl'])} U {pct(m['unseen'])} S {pct(m['seen'])} H {pct(m['harmonic'])}"
            f" (best gamma {m['best_gamma']:.3f}: H {pct(m['best_harmonic'])})"
        )
    return text


def train(config: TrainConfig | Mapping[str, Any] | str | os.PathLike) -> TrainResult:
    """Train (and select, and evaluate) a ZeroMamba model; see the module docstring.

    Args:
        config: a :class:`TrainConfig`, a mapping of its fields (the dataset's preset fills the
            rest), or the path of a JSON/TOML file.

    Returns:
        :class:`TrainResult` (identical on every rank under torchrun; only rank 0 writes files).

    Raises:
        DataError: dataset problems; ConfigError: bad settings; TrainingError: a non-finite loss
        (the last good checkpoint is kept) or a run folder already in use without ``resume``;
        CheckpointError: unreadable checkpoints or an ``init`` that does not fit.
    """
    cfg = resolve_config(config)
    env = _setup_distributed(cfg.device)
    try:
        return _Run(cfg, env).run()
    finally:
        if env.owns_group:
            dist.destroy_process_group()
