"""The competition metric against hand-worked cases and a slow exact reference."""
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from salt.metric import IOU_THRESHOLDS, competition_score, image_scores
from salt.rle import encode


def masks_with(n_truth, n_pred, n_inter, shape=(101, 101)):
    """A (truth, pred) pair with the given pixel counts and overlap, laid out in row-major order."""
    size = shape[0] * shape[1]
    t, p = np.zeros(size, bool), np.zeros(size, bool)
    t[:n_truth] = True
    start = n_truth - n_inter
    p[start:start + n_pred] = True
    return t.reshape(shape), p.reshape(shape)


def slow_score(truth, pred):
    """Per-image reference: exact rationals, plain Python."""
    out = []
    for t, p in zip(truth, pred):
        t, p = t.ravel().tolist(), p.ravel().tolist()
        inter = sum(a and b for a, b in zip(t, p))
        union = sum(a or b for a, b in zip(t, p))
        if not any(t):
            out.append(1.0 if not any(p) else 0.0)
            continue
        iou = Fraction(inter, union)
        thresholds = [Fraction(50 + 5 * k, 100) for k in range(10)]
        out.append(sum(iou > th for th in thresholds) / 10)
    return np.array(out)


def test_thresholds():
    assert IOU_THRESHOLDS.tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


@pytest.mark.parametrize("n_truth,n_pred,n_inter,expected", [
    (0, 0, 0, 1.0),            # empty truth, empty prediction
    (0, 5, 0, 0.0),            # empty truth, any prediction
    (0, 1, 0, 0.0),
    (10, 0, 0, 0.0),           # non-empty truth, empty prediction
    (10, 10, 10, 1.0),         # perfect
    (10, 10, 0, 0.0),          # disjoint
    (4, 3, 3, 0.5),            # IoU exactly 3/4: passes 0.50..0.70 only, not 0.75
    (76, 76, 76 - 0, 1.0),
    (100, 76, 76, 0.6),        # IoU 0.76: just above 0.75
    (100, 74, 74, 0.5),        # IoU 0.74: just below 0.75
    (2, 1, 1, 0.0),            # IoU exactly 0.5: passes nothing
    (20, 11, 11, 0.1),         # IoU exactly 0.55: passes 0.50 only
    (20, 19, 19, 0.9),         # IoU exactly 0.95: all but 0.95
    (1000, 951, 951, 1.0),     # IoU 0.951
    (1000, 949, 949, 0.9),     # IoU 0.949
    (100, 100, 60, 0.0),       # IoU 60/140 < 0.5
    (20, 14, 14, 0.4),         # IoU exactly 0.70: passes 0.50, 0.55, 0.60, 0.65
])
def test_hand_worked(n_truth, n_pred, n_inter, expected):
    t, p = masks_with(n_truth, n_pred, n_inter)
    got = image_scores(t[None], p[None])
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, abs=1e-12)


def test_mean_over_images():
    pairs = [masks_with(0, 0, 0), masks_with(4, 3, 3), masks_with(10, 0, 0), masks_with(5, 5, 5)]
    truth = np.stack([a for a, _ in pairs])
    pred = np.stack([b for _, b in pairs])
    assert image_scores(truth, pred).tolist() == [1.0, 0.5, 0.0, 1.0]
    assert competition_score(truth, pred) == pytest.approx(2.5 / 4)


def test_against_slow_reference():
    rng = np.random.default_rng(1)
    n, shape = 60, (12, 12)
    truth = np.zeros((n,) + shape, bool)
    pred = np.zeros((n,) + shape, bool)
    for i in range(n):
        kind = i % 4
        if kind:  # non-empty truth: a random rectangle
            r, c = rng.integers(0, 8, size=2)
            truth[i, r:r + rng.integers(2, 6), c:c + rng.integers(2, 6)] = True
        if kind != 1:  # a prediction near the truth, or noise
            pred[i] = truth[i] ^ (rng.random(shape) < rng.uniform(0, 0.15))
    expected = slow_score(truth, pred)
    np.testing.assert_array_equal(image_scores(truth, pred), expected)
    assert competition_score(truth, pred) == pytest.approx(expected.mean())


def test_shape_mismatch():
    with pytest.raises(ValueError):
        image_scores(np.zeros((2, 5, 5), bool), np.zeros((2, 5, 6), bool))


def _write(path, ids, masks):
    pd.DataFrame({"id": ids, "rle_mask": [encode(m) for m in masks]}).to_csv(path, index=False)


def test_cli_any_row_order_and_missing_id(tmp_path, run_module):
    pairs = [masks_with(0, 0, 0), masks_with(4, 3, 3), masks_with(10, 0, 0), masks_with(5, 5, 5)]
    ids = ["a", "b", "c", "d"]
    _write(tmp_path / "truth.csv", ids, [t for t, _ in pairs])
    _write(tmp_path / "pred.csv", ids[::-1], [p for _, p in pairs][::-1])
    r = run_module("salt.metric", "--truth", tmp_path / "truth.csv", "--pred", tmp_path / "pred.csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "score: 0.625000"

    _write(tmp_path / "short.csv", ids[:3], [p for _, p in pairs][:3])
    r = run_module("salt.metric", "--truth", tmp_path / "truth.csv", "--pred", tmp_path / "short.csv")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert "short.csv" in r.stderr and " d " in r.stderr


def test_cli_real_train_against_itself(real_data, run_module):
    r = run_module("salt.metric", "--truth", real_data / "train.csv", "--pred", real_data / "train.csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "score: 1.000000"
