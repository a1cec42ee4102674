"""Where the predictions fail: out-of-fold scores by salt coverage class, and the examples to look at.

Coverage is the share of an image's pixels that are salt in the truth. Classes: empty (no salt), then
salt covering (0, 5%), [5%, 20%), [20%, 50%), [50%, 90%) and [90%, 100%] of the image. Pure numpy.
"""
from __future__ import annotations

import numpy as np

# (label, lower bound inclusive) of the salt classes; the empty class is coverage == 0.
SALT_CLASSES = [("salt < 5%", 0.0), ("salt 5–20%", 0.05), ("salt 20–50%", 0.20), ("salt 50–90%", 0.50),
                ("salt > 90%", 0.90)]
CLASS_NAMES = ["empty"] + [name for name, _ in SALT_CLASSES]


def coverage(masks) -> np.ndarray:
    """Share of salt pixels per mask, float64 (N,)."""
    m = np.asarray(masks, dtype=bool)
    return m.reshape(len(m), -1).mean(axis=1)


def coverage_class(masks) -> np.ndarray:
    """Class index per mask (N,): 0 empty, 1..5 the salt classes of SALT_CLASSES."""
    m = np.asarray(masks, dtype=bool)
    n_salt = m.reshape(len(m), -1).sum(axis=1)
    cov = n_salt / m[0].size if len(m) else np.zeros(0)
    bounds = np.array([lo for _, lo in SALT_CLASSES[1:]])
    cls = 1 + np.searchsorted(bounds, cov, side="right")
    return np.where(n_salt == 0, 0, cls).astype(np.int64)


def iou(truth, pred) -> np.ndarray:
    """Intersection over union per image (N,); 1.0 where both are empty."""
    t = np.asarray(truth, dtype=bool).reshape(len(truth), -1)
    p = np.asarray(pred, dtype=bool).reshape(len(pred), -1)
    inter = (t & p).sum(axis=1)
    union = (t | p).sum(axis=1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def class_rows(truth, pred, scores, scores_alone=None) -> list[dict]:
    """One dict per coverage class, and a last one for all images:
    name, n, share (of all images), score (mean, final rules), score_alone (mean, segmenter alone, or None),
    iou (mean), wrong (empty class: images with a false positive; salt classes: images predicted empty),
    wrong_share (of the class), lost (the class's share of the score lost overall: sum(1 - score) / N)."""
    truth = np.asarray(truth, dtype=bool)
    n_all = len(truth)
    cls = coverage_class(truth)
    ious = iou(truth, pred)
    pred_any = np.asarray(pred, dtype=bool).reshape(n_all, -1).any(axis=1)
    scores = np.asarray(scores, dtype=np.float64)
    rows = []
    for c, name in list(enumerate(CLASS_NAMES)) + [(None, "all images")]:
        sel = np.ones(n_all, bool) if c is None else cls == c
        n = int(sel.sum())
        if c is None:
            wrong = None
        elif c == 0:
            wrong = int((sel & pred_any).sum())
        else:
            wrong = int((sel & ~pred_any).sum())
        mean = lambda a: float(a[sel].mean()) if n else float("nan")  # noqa: E731
        rows.append({"name": name, "n": n, "share": n / n_all if n_all else float("nan"),
                     "score": mean(scores), "score_alone": None if scores_alone is None else
                     mean(np.asarray(scores_alone, dtype=np.float64)),
                     "iou": mean(ious), "wrong": wrong,
                     "wrong_share": (wrong / n if n else float("nan")) if wrong is not None else None,
                     "lost": float((1 - scores[sel]).sum() / n_all) if n_all else float("nan")})
    return rows


def worst_by_class(truth, pred, scores, n=4) -> dict[int, np.ndarray]:
    """For each salt class 1..5: the indices of its `n` worst images (lowest score, then lowest IoU,
    then largest coverage)."""
    cls, cov, ious = coverage_class(truth), coverage(truth), iou(truth, pred)
    order = np.lexsort((-cov, ious, scores))
    return {c: order[cls[order] == c][:n] for c in range(1, len(CLASS_NAMES))}


def best_by_class(truth, pred, scores, n=1, exclude=()) -> dict[int, np.ndarray]:
    """For each salt class 1..5: the indices of its `n` best images (highest score, then highest IoU),
    leaving out the indices in `exclude` (the worst images shown, so no image is in both lists)."""
    cls, ious = coverage_class(truth), iou(truth, pred)
    order = np.lexsort((-ious, -np.asarray(scores)))
    order = order[~np.isin(order, np.asarray(list(exclude), dtype=np.int64))]
    return {c: order[cls[order] == c][:n] for c in range(1, len(CLASS_NAMES))}


def worst_false_positives(truth, pred, n=6) -> np.ndarray:
    """Indices of empty-truth images with the largest predicted areas (false positives), largest first."""
    t = np.asarray(truth, dtype=bool).reshape(len(truth), -1)
    area = np.asarray(pred, dtype=bool).reshape(len(pred), -1).sum(axis=1)
    idx = np.flatnonzero(~t.any(axis=1) & (area > 0))
    return idx[np.argsort(-area[idx], kind="stable")][:n]
