"""The per-image tables the rules are tuned on (ensemble.nested), computed once: for each mask threshold of
the grid, each image's score of (prob > t) and predicted area; the score of an empty prediction; the score
of the propagated vertical mask where there is one; which images are constant. A fit is then a few means
over them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASK_THRESHOLDS = np.round(np.arange(0.20, 0.9401, 0.02), 2)  # the mask binarisation thresholds tried


def _scores_from_counts(inter, union) -> np.ndarray:
    """salt.metric's image score from integer intersection and union counts (any shape)."""
    from salt.metric import IOU_THRESHOLDS as IOU

    t100 = np.round(IOU * 100).astype(np.int64)
    passed = (100 * inter[..., None]) > (t100 * union[..., None])
    s = passed.mean(axis=-1)
    s[union == 0] = 1.0
    return s


def threshold_tables(truth, prob, thresholds, chunk=256) -> tuple[np.ndarray, np.ndarray]:
    """(score, area), each (T, N): image score and predicted area of (prob > t) for every threshold t.

    One pass over the pixels: each pixel's count of thresholds below it (prob > t_j iff j < count, in
    float32 as `binarise`), histogrammed per image."""
    thr = np.asarray(thresholds, dtype=np.float32)
    if thr.ndim != 1 or not len(thr) or np.any(np.diff(thr) <= 0):
        raise ValueError(f"thresholds must be increasing, got {thresholds}")
    n, nt = len(truth), len(thr)
    inter = np.zeros((n, nt), np.int64)
    area = np.zeros((n, nt), np.int64)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        p = np.asarray(prob[lo:hi], dtype=np.float32).reshape(hi - lo, -1)
        t = np.asarray(truth[lo:hi], dtype=bool).reshape(hi - lo, -1)
        b = np.searchsorted(thr, p, side="left") + (np.arange(hi - lo) * (nt + 1))[:, None]
        for counts, sel in ((area, None), (inter, t)):
            h = np.bincount(b.ravel() if sel is None else b[sel], minlength=(hi - lo) * (nt + 1))
            above = np.cumsum(h.reshape(hi - lo, nt + 1)[:, ::-1], axis=1)[:, ::-1]  # pixels with count >= v
            counts[lo:hi] = above[:, 1:]
    truth_area = np.asarray(truth, dtype=bool).reshape(n, -1).sum(axis=1)
    score = _scores_from_counts(inter, truth_area[:, None] + area - inter)
    return score.T.copy(), area.T.copy()


@dataclass
class Tables:
    """Per-image tables the rules are tuned on (N images, T thresholds)."""
    thresholds: np.ndarray   # (T,) float64
    score: np.ndarray        # (T, N) score of prob > t
    area: np.ndarray         # (T, N) its area in pixels
    empty: np.ndarray        # (N,) score of an empty prediction
    fold: np.ndarray         # (N,)
    has_vertical: np.ndarray | None = None  # (N,) a vertical mask is propagated into it (None: no mosaic)
    vertical: np.ndarray | None = None      # (N,) score of that mask (0 where none)
    constant: np.ndarray | None = None      # (N,) the image is constant (None: images unknown)

    @property
    def n(self) -> int:
        return len(self.fold)


def make_tables(truth, prob, fold, thresholds=MASK_THRESHOLDS, context=None) -> Tables:
    from salt.metric import image_scores

    truth = np.asarray(truth, dtype=bool)
    score, area = threshold_tables(truth, prob, thresholds)
    empty = (~truth.reshape(len(truth), -1).any(axis=1)).astype(np.float64)
    tab = Tables(np.asarray(thresholds, dtype=np.float64), score, area, empty, np.asarray(fold))
    if context is not None:
        if context.propagated is not None:
            pos = {i: k for k, i in enumerate(context.ids)}
            idx = np.array(sorted(pos[i] for i in context.propagated if i in pos), dtype=np.int64)
            tab.has_vertical = np.zeros(len(truth), bool)
            tab.vertical = np.zeros(len(truth))
            if len(idx):
                tab.has_vertical[idx] = True
                pred = np.stack([context.propagated[context.ids[k]] for k in idx])
                tab.vertical[idx] = image_scores(truth[idx], pred)
        if context.constant is not None:
            tab.constant = np.asarray(context.constant, dtype=bool)
    return tab
