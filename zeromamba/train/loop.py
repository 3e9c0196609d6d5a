"""One process's share of a training phase: the DDP wrap, the data loader, the optimiser state a
checkpoint carries, and the epoch of SGD steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..data import ZSLData
from ..data.shapes import SwatchRenderer, parse_shapes_spec
from ..errors import ConfigError, TrainingError
from ..runtime import DistEnv, autocast
from .checkpoints import Checkpoints, rng_state, set_rng_state
from .config import TrainConfig
from .recipe import compute_loss, group_cross_entropy, make_optimizer, rotate_hue

__all__ = ["PhaseState", "SeenTargets", "SwatchBatch", "SwatchFeed", "Trainer", "wrap_ddp"]


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


def wrap_ddp(model: nn.Module, env: DistEnv) -> nn.Module:
    """``model`` itself on one process; under torchrun a ``DistributedDataParallel`` around it."""
    if env.world == 1:
        return model
    _match_depthwise_grad_layout(model)
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[env.device.index] if env.device.type == "cuda" else None
    )


@dataclass
class PhaseState:
    """What a phase's epochs update and its checkpoints save (``start``: epochs already done)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    scaler: torch.amp.GradScaler
    start: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls, model: nn.Module, cfg: TrainConfig, amp: torch.dtype | None) -> PhaseState:
        """The paper's optimiser and schedule for ``model``; a gradient scaler for float16 AMP."""
        optimizer = make_optimizer(model, cfg)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.lr_decay)
        scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
        return cls(model, optimizer, scheduler, scaler)

    def restore(self, ckpt: Checkpoints, name: str) -> None:
        """Continue from checkpoint ``name``: weights, optimiser, schedule, scaler, RNG, history."""
        state = ckpt.load_state(name)
        self.model.load_state_dict(ckpt.load_weights(name))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.start, self.history, self.best = int(state["epoch"]), list(state["history"]), dict(state["best"])

    def to_checkpoint(self, phase: str, epoch: int, world: int) -> dict[str, Any]:
        """The ``state.pt`` content after ``epoch`` epochs."""
        return {
            "phase": phase,
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": rng_state(),
            "history": self.history,
            "best": self.best,
            "world_size": world,
        }


@dataclass
class SeenTargets:
    """The classes a phase trains on: ``lut`` maps a dataset label to its row of ``attributes``
    (``-1`` for a class outside the phase), ``attributes`` are those classes' attribute rows;
    ``groups`` maps the dataset's attribute groups (if it has them) to their attribute indices."""

    lut: torch.Tensor
    attributes: torch.Tensor
    groups: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, data: ZSLData, seen: np.ndarray, device: torch.device) -> SeenTargets:
        idx = torch.as_tensor(seen, dtype=torch.long)
        lut = torch.full((data.num_classes,), -1, dtype=torch.long)
        lut[idx] = torch.arange(len(seen))
        named = data.extra.get("attribute_groups") or {}
        names = list(data.attribute_names or [])
        groups = {g: torch.tensor([names.index(v) for v in values], device=device) for g, values in named.items()}
        return cls(lut, data.class_attributes[idx].to(device), groups)

    def check(self, cfg: TrainConfig) -> None:
        """Refuse group losses on a dataset without attribute groups.

        Raises:
            ConfigError: ``group_ce_weight`` without groups, or ``hue_rotate_fraction`` without
                the ``colour_group``.
        """
        if cfg.group_ce_weight > 0 and not self.groups:
            raise ConfigError("group_ce_weight needs a dataset with attribute groups (shapes); set it to 0")
        if cfg.hue_rotate_fraction > 0 and cfg.colour_group not in self.groups:
            raise ConfigError(
                f"hue_rotate_fraction: the dataset has no attribute group {cfg.colour_group!r} "
                f"(colour_group; its groups: {', '.join(self.groups) or 'none'})"
            )


# a swatch's fill logits are scaled so that values at a class row's level (1/sqrt(3) for the shown
# value, 0 for the others) already answer confidently: the swatch loss then agrees with the L1
# target of the class images instead of pulling the same logits past it
SWATCH_LOGIT_SCALE = 5.0


@dataclass
class SwatchBatch:
    """The swatches of one step: images, the index of each one's value in the group, and the
    group's attribute indices."""

    images: torch.Tensor
    values: torch.Tensor
    columns: torch.Tensor

    def loss(self, attributes: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the group's (scaled) predicted values of these swatches, ``attributes`` ``(N, A)``."""
        logits = SWATCH_LOGIT_SCALE * attributes[:, self.columns.to(attributes.device)].float()
        return F.cross_entropy(logits, self.values.to(attributes.device))


@dataclass
class SwatchFeed:
    """The texture swatches that join each batch (``swatches_per_batch``): a renderer, the
    transform images get, and the attribute indices of the group the swatches show."""

    renderer: SwatchRenderer
    transform: Callable
    per_batch: int
    columns: torch.Tensor

    @classmethod
    def of(cls, cfg: TrainConfig, targets: SeenTargets, transform: Callable) -> SwatchFeed | None:
        """``None`` without ``swatches_per_batch``.

        Raises:
            ConfigError: swatches asked of a dataset that has none (only ``shapes`` has).
        """
        if cfg.swatches_per_batch <= 0:
            return None
        seed = parse_shapes_spec(cfg.dataset)
        if seed is None or SwatchRenderer.group not in targets.groups:
            raise ConfigError(f"swatches_per_batch: only the shapes dataset has texture swatches (got {cfg.dataset!r})")
        renderer = SwatchRenderer(seed, cfg.shapes_variety)
        return cls(renderer, transform, cfg.swatches_per_batch, targets.groups[SwatchRenderer.group])

    def batch(self, step: int, rank: int, world: int) -> SwatchBatch:
        """The swatches of global step ``step`` on ``rank``; every step and rank draws its own."""
        first = (step * world + rank) * self.per_batch
        images, values = self.renderer.batch(list(range(first, first + self.per_batch)), self.transform)
        return SwatchBatch(images, values, self.columns)


class Trainer:
    """Runs epochs of SGD steps on this process's shard of the training images."""

    def __init__(
        self,
        cfg: TrainConfig,
        env: DistEnv,
        amp: torch.dtype | None,
        ckpt: Checkpoints,
        progress: bool,
    ):
        if cfg.batch_size % env.world:
            raise ConfigError(f"batch_size {cfg.batch_size} (global) is not divisible by {env.world} processes")
        self.cfg, self.env, self.amp, self.ckpt, self.progress = cfg, env, amp, ckpt, progress
        self.local_batch = cfg.batch_size // env.world

    def loader(self, dataset: Dataset) -> tuple[DataLoader, DistributedSampler]:
        """A shuffled loader over this rank's shard (call ``sampler.set_epoch`` every epoch)."""
        cfg, env = self.cfg, self.env
        sampler = DistributedSampler(dataset, num_replicas=env.world, rank=env.rank, shuffle=True, seed=cfg.seed)
        loader = DataLoader(
            dataset,
            batch_size=self.local_batch,
            sampler=sampler,
            num_workers=cfg.num_workers,
            pin_memory=env.device.type == "cuda",
            persistent_workers=False,
        )
        return loader, sampler

    def train_epoch(
        self,
        net: nn.Module,
        loader: DataLoader,
        state: PhaseState,
        targets: SeenTargets,
        phase: str,
        epoch: int,
        epochs: int,
        swatches: SwatchFeed | None = None,
    ) -> dict[str, Any]:
        """Epoch ``epoch`` (0-based) of ``epochs`` of ``phase``, at most ``max_steps_per_epoch`` steps
        (each batch joined by ``swatches`` when given).

        Returns the image-weighted mean ``loss``/``ce``/``l1`` over every rank, the number of
        ``images`` and ``steps``.
        """
        from tqdm.auto import tqdm

        cfg = self.cfg
        net.train()
        sums = [0.0, 0.0, 0.0, 0.0]  # loss, ce, l1 (image-weighted), images
        steps = len(loader) if cfg.max_steps_per_epoch is None else min(len(loader), cfg.max_steps_per_epoch)
        bar = tqdm(total=steps, desc=f"{phase} {epoch + 1}/{epochs}", disable=not self.progress, leave=False)
        for step, (x, y, _) in enumerate(loader):
            if step >= steps:
                break
            shown = None if swatches is None else swatches.batch(epoch * steps + step, self.env.rank, self.env.world)
            where = f"{phase} epoch {epoch + 1}, step {step + 1}"
            loss, ce, l1 = self._step(net, x, y, state, targets, where, shown)
            n = len(y)
            sums = [sums[0] + loss * n, sums[1] + ce * n, sums[2] + l1 * n, sums[3] + n]
            bar.update(1)
            bar.set_postfix(loss=f"{sums[0] / sums[3]:.4f}")
        bar.close()
        tot = self.env.all_sum(sums)
        n = max(tot[3], 1.0)
        return {"loss": tot[0] / n, "ce": tot[1] / n, "l1": tot[2] / n, "images": int(tot[3]), "steps": steps}

    def _step(
        self,
        net: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        state: PhaseState,
        targets: SeenTargets,
        where: str,
        swatches: SwatchBatch | None = None,
    ) -> tuple[float, float, float]:
        device = self.env.device
        x = x.to(device, non_blocking=True)
        target = targets.lut[y].to(device, non_blocking=True)
        if bool((target < 0).any()):
            raise TrainingError("a training image's class is not among the seen classes")
        cfg = self.cfg
        # the first images of the (shuffled) batch at a random hue: they learn every group but colour
        turned = min(round(cfg.hue_rotate_fraction * len(x)), len(x) - 1)
        if turned:
            x = torch.cat([rotate_hue(x[:turned], torch.rand(turned, device=device) * (2 * torch.pi)), x[turned:]])
        n = len(x)
        if swatches is not None:
            x = torch.cat([x, swatches.images.to(device, non_blocking=True)])
        with autocast(device, self.amp):
            out = net(x)
        swatch_out, out_attributes = out.attributes[n:], out.attributes[:n]
        loss, ce, l1 = compute_loss(out_attributes[turned:], target[turned:], targets.attributes, cfg.l1_weight)
        if swatches is not None:
            loss = loss + cfg.swatch_weight * swatches.loss(swatch_out)
        if cfg.group_ce_weight > 0:
            skip = torch.arange(n, device=device) < turned
            groups = list(targets.groups.values())
            unsupervised = [skip if name == cfg.colour_group else None for name in targets.groups]
            rows = targets.attributes[target]
            loss = loss + cfg.group_ce_weight * group_cross_entropy(out_attributes, rows, groups, unsupervised)
        # every rank stops together, or the others would wait in the next all-reduce forever
        if not self.env.all_true(bool(torch.isfinite(loss.detach()).item())):
            self._stop_non_finite(loss, where)
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        return loss.item(), ce.item(), l1.item()

    def _stop_non_finite(self, loss: torch.Tensor, where: str) -> None:
        latest = self.ckpt.latest()
        kept = (
            f"the last good checkpoint is kept: {self.ckpt.root / latest['dir']}"
            if latest
            else "no checkpoint had been written yet"
        )
        raise TrainingError(
            f"non-finite loss ({loss.item()}) in {where}: training stopped; {kept}. "
            "Lower the learning rate or turn AMP off (--amp off), then continue with --resume."
        )
