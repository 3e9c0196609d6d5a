"""Zero-shot metrics against hand-computed cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zeromamba.evaluate import evaluate_attributes
from zeromamba.metrics import (
    czsl_accuracy,
    format_table,
    gzsl_accuracy,
    harmonic_mean,
    mean_class_accuracy,
    plot_curve,
    seen_unseen_curve,
    zsl_metrics,
)

# classes 0, 1 seen; 2, 3 unseen. Scores are log-probabilities, so softmax gives these rows back.
PROBS = np.array(
    [
        [0.50, 0.10, 0.30, 0.10],  # label 0: best seen 0 (right), best unseen 2, t = 0.2
        [0.20, 0.40, 0.30, 0.10],  # label 0: best seen 1 (wrong), t = 0.1
        [0.10, 0.60, 0.20, 0.10],  # label 1: best seen 1 (right), t = 0.4
        [0.40, 0.10, 0.30, 0.20],  # label 2: best unseen 2 (right), t = 0.1
        [0.10, 0.20, 0.30, 0.40],  # label 3: best unseen 3 (right), t = -0.2
        [0.35, 0.05, 0.45, 0.15],  # label 3: best unseen 2 (wrong), t = -0.1
    ]
)
LABELS = np.array([0, 0, 1, 2, 3, 3])
SEEN = np.array([True, True, False, False])
SCORES = torch.from_numpy(np.log(PROBS))


def test_mean_class_accuracy_and_h() -> None:
    assert mean_class_accuracy([0, 1, 1, 2], [0, 0, 1, 2]) == pytest.approx((0.5 + 1 + 1) / 3)
    assert mean_class_accuracy([0, 0], [0, 0], classes=[0, 5]) == 1.0  # class 5 has no images
    assert harmonic_mean(0.5, 0.75) == pytest.approx(0.6)
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_czsl_by_hand() -> None:
    unseen = LABELS >= 2
    # among columns 2, 3: image 3 -> 2 (right), image 4 -> 3 (right), image 5 -> 2 (wrong)
    assert czsl_accuracy(SCORES[unseen], LABELS[unseen], [2, 3]) == pytest.approx((1.0 + 0.5) / 2)


@pytest.mark.parametrize(
    "gamma, u, s",
    [
        (0.0, 0.25, 0.75),  # plain argmax: 0 1 1 | 0 3 2
        (0.15, 0.75, 0.75),  # images with t < 0.15 switch to their best unseen class
        (0.3, 0.75, 0.5),
        (0.5, 0.75, 0.0),  # everything unseen: U = CZSL
        (-0.5, 0.0, 0.75),  # everything seen
    ],
)
def test_gzsl_by_hand(gamma: float, u: float, s: float) -> None:
    got = gzsl_accuracy(SCORES, LABELS, SEEN, gamma)
    assert got == pytest.approx((u, s, harmonic_mean(u, s)))


def test_curve_by_hand() -> None:
    curve = seen_unseen_curve(SCORES, LABELS, SEEN)
    pts = [(round(float(s), 6), round(float(u), 6)) for s, u in zip(curve.seen, curve.unseen)]
    distinct = [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]
    assert distinct == [(0.75, 0.0), (0.75, 0.25), (0.75, 0.75), (0.5, 0.75), (0.0, 0.75)]
    assert curve.auc == pytest.approx(0.75 * 0.75)  # the staircase's area
    assert np.all(np.diff(curve.gammas) > 0)
    m = zsl_metrics(SCORES, LABELS, SEEN, gamma=0.3)
    assert (m.czsl, m.unseen, m.seen) == pytest.approx((0.75, 0.75, 0.5))
    assert (m.best_unseen, m.best_seen, m.best_harmonic) == pytest.approx((0.75, 0.75, 0.75))
    assert 0.1 < m.best_gamma < 0.2 and m.ausuc == pytest.approx(0.5625)


def test_curve_matches_direct_evaluation_everywhere() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(300, 9, generator=g) * 3
    labels = torch.randint(0, 9, (300,), generator=g)
    seen = torch.tensor([True] * 6 + [False] * 3)
    curve = seen_unseen_curve(scores, labels, seen)
    for k in range(0, len(curve.gammas), 7):
        u, s, _ = gzsl_accuracy(scores, labels, seen, float(curve.gammas[k]))
        assert (s, u) == pytest.approx((curve.seen[k], curve.unseen[k]))
    unseen_imgs = ~seen[labels]
    czsl = czsl_accuracy(scores[unseen_imgs], labels[unseen_imgs], [6, 7, 8])
    assert curve.unseen[-1] == pytest.approx(czsl) and curve.seen[0] > 0 and curve.unseen[0] == 0


def test_evaluate_attributes_restricts_candidates() -> None:
    # 5 classes; class 4 belongs to neither role, so it can never be predicted
    att = torch.eye(5)
    attrs = torch.tensor([[0.0, 0, 0, 0, 9], [1.0, 0, 0, 0, 0], [0.0, 0, 1, 0, 8], [0.0, 0, 0, 1, 0]])
    labels = torch.tensor([0, 0, 2, 3])
    m = evaluate_attributes(attrs, labels, att, seen_classes=[0, 1], unseen_classes=[2, 3], gamma=0.0)
    assert m.czsl == pytest.approx(1.0)  # image 2 picks class 2 once class 4 is not a candidate
    # image 0 scores 0 for every candidate: argmax takes the first (class 0): S = 1
    assert m.seen == pytest.approx(1.0) and m.unseen == pytest.approx(1.0)


def test_table_json_plot(tmp_path: Path) -> None:
    m = zsl_metrics(SCORES, LABELS, SEEN, gamma=0.3)
    table = format_table(m, title="hand")
    assert "hand" in table and "75.0" in table and "AUSUC" in table
    d = m.to_dict()
    json.dumps(d)
    assert set(d["curve"]) == {"gamma", "seen", "unseen", "ausuc"} and len(d["curve"]["gamma"]) == 6
    assert "curve" not in m.to_dict(include_curve=False)
    plot_curve(m.curve, tmp_path / "c.png", title="hand", marks={"chosen": (m.seen, m.unseen)})
    with Image.open(tmp_path / "c.png") as im:
        assert im.format == "PNG" and im.size == (480, 480)


def test_metrics_reject_degenerate_input() -> None:
    with pytest.raises(ValueError):
        seen_unseen_curve(SCORES, LABELS, np.ones(4, bool))
    with pytest.raises(ValueError):
        zsl_metrics(SCORES[:3], LABELS[:3], SEEN, 0.0)  # no unseen images
    assert math.isnan(mean_class_accuracy([], []))
