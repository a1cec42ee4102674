"""The competition metric: mean over images of the fraction of IoU thresholds 0.50..0.95 passed.

Per image: IoU of predicted and true mask; the image scores the fraction of the thresholds
0.50, 0.55, ..., 0.95 that its IoU strictly exceeds. An empty truth scores 1 for an empty prediction
and 0 otherwise. Comparisons are exact: IoU > t is tested as 100 * intersection > T * union with
integer T in 50, 55, ..., 95.

CLI: python -m salt.metric --truth train.csv --pred submission.csv   (last line: "score: 0.XXXXXX")
"""
from __future__ import annotations

import argparse

import numpy as np

from salt.cli import UserError, run_cli

IOU_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)  # the competition's: an image passes t when IoU > t
_T100 = np.arange(50, 100, 5, dtype=np.int64)  # IOU_THRESHOLDS * 100, exactly


def image_scores(truth, pred) -> np.ndarray:
    """Per-image scores (N,) float64 for bool masks truth, pred of shape (N, H, W) (or one (H, W) pair)."""
    truth, pred = np.asarray(truth, dtype=bool), np.asarray(pred, dtype=bool)
    if truth.shape != pred.shape:
        raise ValueError(f"truth shape {truth.shape} != prediction shape {pred.shape}")
    if truth.ndim == 2:
        truth, pred = truth[None], pred[None]
    n = len(truth)
    t, p = truth.reshape(n, -1), pred.reshape(n, -1)
    inter = np.count_nonzero(t & p, axis=1).astype(np.int64)
    union = np.count_nonzero(t | p, axis=1).astype(np.int64)
    passed = (100 * inter[:, None]) > (_T100[None, :] * union[:, None])
    scores = passed.mean(axis=1)
    scores[union == 0] = 1.0  # empty truth, empty prediction
    return scores


def competition_score(truth, pred) -> float:
    """Mean of image_scores over the images."""
    s = image_scores(truth, pred)
    return float(s.mean()) if s.size else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m salt.metric", description=__doc__.split("\n")[0])
    ap.add_argument("--truth", required=True, help="id,rle_mask CSV with the true masks (e.g. train.csv)")
    ap.add_argument("--pred", required=True, help="submission CSV (id,rle_mask), any row order")
    args = ap.parse_args(argv)
    from salt.rle import read_rle_csv

    truth = read_rle_csv(args.truth)
    pred = read_rle_csv(args.pred)
    missing = [i for i in truth if i not in pred]
    if missing:
        raise UserError(f"{args.pred}: id {missing[0]} of {args.truth} has no prediction ({len(missing)} missing)")
    ids = list(truth)
    extra = len(set(pred) - set(truth))
    score = competition_score(np.stack([truth[i] for i in ids]), np.stack([pred[i] for i in ids]))
    note = f" ({extra} extra ids in the prediction ignored)" if extra else ""
    print(f"images: {len(ids)}{note}")
    print(f"score: {score:.6f}")
    return 0


if __name__ == "__main__":
    run_cli(main)
