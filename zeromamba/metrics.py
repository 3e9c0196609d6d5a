"""Zero-shot metrics: CZSL accuracy, GZSL U/S/H with calibrated stacking, the seen-unseen curve and
its area (AUSUC), as a table, JSON and an optional PNG plot.

Every accuracy is a *mean per-class* top-1 accuracy (the mean over classes of the share of that
class's images predicted correctly), as a fraction in [0, 1]; tables print percentages.

GZSL uses calibrated stacking: ``argmax(softmax(scores) - gamma * seen)`` (gamma in probability
units). An image's prediction depends on gamma only through ``t = max_seen p - max_unseen p``: it
is the best seen class while ``gamma < t`` and the best unseen class from then on. So the whole
seen-unseen curve is exact and costs one sort (Chao et al., ECCV 2016, for AUSUC).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .fileio import atomic_write
from .scoring import calibrated_stacking

__all__ = [
    "SeenUnseenCurve",
    "ZSLMetrics",
    "mean_class_accuracy",
    "czsl_accuracy",
    "gzsl_accuracy",
    "harmonic_mean",
    "seen_unseen_curve",
    "zsl_metrics",
    "format_table",
    "plot_curve",
    "plot_metrics",
]


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def harmonic_mean(unseen: float, seen: float) -> float:
    """``2 U S / (U + S)`` (0 when both are 0)."""
    return 0.0 if unseen + seen <= 0 else 2.0 * unseen * seen / (unseen + seen)


def mean_class_accuracy(
    predictions: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    classes: torch.Tensor | np.ndarray | None = None,
) -> float:
    """Mean over classes of per-class top-1 accuracy.

    Args:
        predictions, labels: ``(N,)`` class indices.
        classes: the classes to average over (default: those present in ``labels``); a listed
            class without images is skipped (it has no accuracy).
    """
    pred, lab = _np(predictions).reshape(-1), _np(labels).reshape(-1)
    if pred.shape != lab.shape:
        raise ValueError(f"predictions {pred.shape} and labels {lab.shape} differ in length")
    cls = np.unique(lab) if classes is None else np.asarray(_np(classes)).reshape(-1)
    accs = [float(np.mean(pred[lab == c] == c)) for c in cls if np.any(lab == c)]
    return float(np.mean(accs)) if accs else float("nan")


def czsl_accuracy(
    scores: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, unseen_classes: torch.Tensor | np.ndarray
) -> float:
    """Conventional ZSL: predict among the unseen classes only; mean per-class accuracy.

    Args:
        scores: ``(N, C)`` class scores of unseen-class images (columns: all classes).
        labels: ``(N,)`` their class indices.
        unseen_classes: indices of the candidate (unseen) classes.
    """
    s, unseen = _np(scores), np.asarray(_np(unseen_classes)).reshape(-1)
    pred = unseen[np.argmax(s[:, unseen], axis=1)]
    return mean_class_accuracy(pred, labels, unseen)


def gzsl_accuracy(
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    seen_mask: torch.Tensor | np.ndarray,
    gamma: float,
) -> tuple[float, float, float]:
    """Generalised ZSL with calibrated stacking -> ``(U, S, H)``.

    Args:
        scores: ``(N, C)`` class scores of test images of seen and unseen classes.
        labels: ``(N,)`` class indices; an image counts towards S when its class is seen, else U.
        seen_mask: ``(C,)`` True for seen classes.
        gamma: calibration, subtracted from the seen classes' softmax probabilities.
    """
    s = torch.as_tensor(_np(scores), dtype=torch.float64)
    mask = torch.as_tensor(_np(seen_mask)).bool()
    pred = calibrated_stacking(s, mask, gamma).argmax(dim=1).numpy()
    lab = _np(labels).reshape(-1)
    is_seen = _np(mask)[lab]
    u = mean_class_accuracy(pred[~is_seen], lab[~is_seen]) if np.any(~is_seen) else float("nan")
    sa = mean_class_accuracy(pred[is_seen], lab[is_seen]) if np.any(is_seen) else float("nan")
    return u, sa, harmonic_mean(u, sa)


@dataclass
class SeenUnseenCurve:
    """The exact seen-unseen accuracy curve of calibrated stacking over all gamma.

    ``gammas`` ascend; ``seen`` (S) falls and ``unseen`` (U) rises along them. Each gamma stands for
    the interval between two consecutive thresholds (it is their midpoint), so every distinct
    operating point appears once. ``auc`` is the area under U as a function of S (AUSUC).
    """

    gammas: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray
    auc: float

    @property
    def harmonic(self) -> np.ndarray:
        tot = self.seen + self.unseen
        return np.where(tot > 0, 2 * self.seen * self.unseen / np.where(tot > 0, tot, 1), 0.0)

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.harmonic))

    def to_dict(self) -> dict[str, Any]:
        return {
            "gamma": [round(float(g), 6) for g in self.gammas],
            "seen": [round(float(v), 6) for v in self.seen],
            "unseen": [round(float(v), 6) for v in self.unseen],
            "ausuc": self.auc,
        }


def seen_unseen_curve(
    scores: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, seen_mask: torch.Tensor | np.ndarray
) -> SeenUnseenCurve:
    """Every (S, U) operating point of calibrated stacking, exactly, and the area under it."""
    s = torch.as_tensor(_np(scores), dtype=torch.float64)
    prob = torch.softmax(s, dim=1).numpy()
    mask = _np(seen_mask).astype(bool)
    lab = _np(labels).reshape(-1)
    if not mask.any() or mask.all():
        raise ValueError("the seen-unseen curve needs both seen and unseen classes")
    seen_cols, unseen_cols = np.flatnonzero(mask), np.flatnonzero(~mask)
    best_seen = seen_cols[np.argmax(prob[:, seen_cols], axis=1)]
    best_unseen = unseen_cols[np.argmax(prob[:, unseen_cols], axis=1)]
    t = prob[np.arange(len(lab)), best_seen] - prob[np.arange(len(lab)), best_unseen]
    is_seen = mask[lab]
    # per-image weight so that sums are mean per-class accuracies within each group
    w = np.zeros(len(lab))
    for group in (is_seen, ~is_seen):
        cls, inv, counts = np.unique(lab[group], return_inverse=True, return_counts=True)
        if len(cls):
            w[group] = 1.0 / (counts[inv] * len(cls))
    a = np.where(is_seen & (best_seen == lab), w, 0.0)  # counts while predicted seen
    b = np.where(~is_seen & (best_unseen == lab), w, 0.0)  # counts once predicted unseen
    order = np.argsort(t, kind="stable")
    ts, cum_a, cum_b = (
        t[order],
        np.concatenate([[0.0], np.cumsum(a[order])]),
        np.concatenate([[0.0], np.cumsum(b[order])]),
    )
    thr = np.unique(ts)
    eps = 1e-3
    gammas = np.concatenate([[thr[0] - eps], (thr[:-1] + thr[1:]) / 2, [thr[-1] + eps]])
    j = np.searchsorted(ts, gammas, side="right")  # images with t <= gamma are predicted unseen
    seen_acc = cum_a[-1] - cum_a[j]
    unseen_acc = cum_b[j]
    x, y = seen_acc[::-1], unseen_acc[::-1]  # S ascending
    auc = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    return SeenUnseenCurve(gammas=gammas, seen=seen_acc, unseen=unseen_acc, auc=auc)


@dataclass
class ZSLMetrics:
    """All zero-shot metrics of one evaluation (fractions in [0, 1]).

    ``unseen``/``seen``/``harmonic`` are at ``gamma``; ``best_*`` at the gamma that maximises H on
    the evaluated split (tuned on that split: only a fair number when it is a validation split).
    """

    czsl: float
    unseen: float
    seen: float
    harmonic: float
    gamma: float
    best_gamma: float
    best_unseen: float
    best_seen: float
    best_harmonic: float
    ausuc: float
    curve: SeenUnseenCurve | None = field(default=None, repr=False)

    def to_dict(self, include_curve: bool = True) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "curve"}
        if include_curve and self.curve is not None:
            out["curve"] = self.curve.to_dict()
        return out


def zsl_metrics(
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    seen_mask: torch.Tensor | np.ndarray,
    gamma: float,
) -> ZSLMetrics:
    """CZSL accuracy, GZSL U/S/H at ``gamma``, the best gamma by H, and the seen-unseen curve.

    Args:
        scores: ``(N, C)`` scores of test images of seen and unseen classes.
        labels: ``(N,)`` class indices.
        seen_mask: ``(C,)`` True for seen classes; the others are the unseen candidates.
        gamma: the calibration to report U/S/H at.
    """
    mask = _np(seen_mask).astype(bool)
    lab = _np(labels).reshape(-1)
    sc = _np(scores)
    unseen_imgs = ~mask[lab]
    if not unseen_imgs.any() or unseen_imgs.all():
        raise ValueError("evaluation needs images of both seen and unseen classes")
    czsl = czsl_accuracy(sc[unseen_imgs], lab[unseen_imgs], np.flatnonzero(~mask))
    u, s, h = gzsl_accuracy(sc, lab, mask, gamma)
    curve = seen_unseen_curve(sc, lab, mask)
    k = curve.best_index
    return ZSLMetrics(
        czsl=czsl,
        unseen=u,
        seen=s,
        harmonic=h,
        gamma=float(gamma),
        best_gamma=float(curve.gammas[k]),
        best_unseen=float(curve.unseen[k]),
        best_seen=float(curve.seen[k]),
        best_harmonic=float(curve.harmonic[k]),
        ausuc=curve.auc,
        curve=curve,
    )


def format_table(metrics: ZSLMetrics, title: str | None = None, gamma_note: str = "") -> str:
    """A plain-text table (percentages)."""

    def pct(v: float) -> str:
        return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:5.1f}"

    rows = [
        ("", "CZSL", "U", "S", "H", "gamma"),
        (
            "chosen gamma" + gamma_note,
            pct(metrics.czsl),
            pct(metrics.unseen),
            pct(metrics.seen),
            pct(metrics.harmonic),
            f"{metrics.gamma:.3f}",
        ),
        (
            "best gamma on this split",
            "",
            pct(metrics.best_unseen),
            pct(metrics.best_seen),
            pct(metrics.best_harmonic),
            f"{metrics.best_gamma:.3f}",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [title] if title else []
    for r in rows:
        lines.append(r[0].ljust(width) + "".join(c.rjust(8) for c in r[1:]))
    lines.append(f"AUSUC (area under the seen-unseen curve): {100 * metrics.ausuc:.2f}")
    return "\n".join(lines)


def plot_curve(
    curve: SeenUnseenCurve,
    path: str | os.PathLike,
    title: str = "",
    marks: dict[str, tuple[float, float]] | None = None,
    size: int = 480,
) -> None:
    """Draw the seen-unseen curve (S on x, U on y, in %) to a PNG with PIL.

    Args:
        curve: from :func:`seen_unseen_curve`.
        path: the PNG to write.
        title: drawn at the top (the AUSUC is appended).
        marks: label -> (S, U) points to mark, e.g. the chosen and the best gamma.
    """
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    left, top, right, bottom = 56, 52, size - 20, size - 48

    def to_px(s: float, u: float) -> tuple[float, float]:
        return left + s * (right - left), bottom - u * (bottom - top)

    d.rectangle([left, top, right, bottom], outline="black")
    for i in range(6):
        v = i / 5
        x, _ = to_px(v, 0)
        _, y = to_px(0, v)
        d.line([x, bottom, x, bottom + 4], fill="black")
        d.line([left - 4, y, left, y], fill="black")
        d.text((x - 8, bottom + 8), f"{int(v * 100)}", fill="black")
        d.text((left - 30, y - 6), f"{int(v * 100)}", fill="black")
        d.line([x, top, x, bottom], fill=(230, 230, 230))
        d.line([left, y, right, y], fill=(230, 230, 230))
    d.text(((left + right) / 2 - 70, bottom + 24), "seen accuracy S (%)", fill="black")
    d.text((4, top - 18), "unseen accuracy U (%)", fill="black")
    pts = [to_px(float(s), float(u)) for s, u in zip(curve.seen[::-1], curve.unseen[::-1])]
    if len(pts) >= 2:
        d.line(pts, fill=(31, 119, 180), width=2)
    colors = [(214, 39, 40), (44, 160, 44), (148, 103, 189)]
    for n, (label, (s, u)) in enumerate((marks or {}).items()):
        x, y = to_px(s, u)
        c = colors[n % len(colors)]
        d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=c)
        d.text((right - 190, top + 8 + 14 * n), f"* {label}", fill=c)
    d.text((left, 6), f"{title}  AUSUC {100 * curve.auc:.2f}".strip(), fill="black")
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def plot_metrics(metrics: ZSLMetrics, path: str | os.PathLike, title: str = "") -> None:
    """Draw ``metrics.curve`` (:func:`plot_curve`) with two marks: the point at the chosen gamma
    and the one at the best gamma of the evaluated split, each labelled with its gamma and H."""
    if metrics.curve is None:
        raise ValueError("these metrics have no seen-unseen curve to draw")
    marks = {
        f"gamma {metrics.gamma:.3f} (H {100 * metrics.harmonic:.1f})": (metrics.seen, metrics.unseen),
        f"best gamma {metrics.best_gamma:.3f} (H {100 * metrics.best_harmonic:.1f})": (
            metrics.best_seen,
            metrics.best_unseen,
        ),
    }
    plot_curve(metrics.curve, path, title=title, marks=marks)
