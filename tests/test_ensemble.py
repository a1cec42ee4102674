"""Tests of the ensemble package on fabricated model outputs (no model is trained or imported)."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salt.cli import UserError
from salt.data import fingerprint, load_images, load_train
from salt.folds import load_or_make_folds
from salt.io import save_npz, write_csv, write_json
from salt.metric import competition_score, image_scores
from salt.rle import encode
from salt.rle import read_rle_csv
from ensemble.nested import decide, tune_arrays
from ensemble.rules import TileContext, apply_rules, oof_context, submit_context
from ensemble.tables import MASK_THRESHOLDS, threshold_tables
from ensemble.tune import tune

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ helpers
def square(y, x, h, w, size=101):
    m = np.zeros((size, size), dtype=bool)
    m[y:y + h, x:x + w] = True
    return m


def slow_rules(prob, p_salt, p_empty, params, ids=None, propagated=None, images=None):
    """Reference for apply_rules: one image and one pixel comparison at a time, float64; the tile rules
    from the propagated masks {id: mask} and the images' pixels."""
    out = np.zeros(prob.shape, dtype=bool)
    rule = params.get("empty_rule")
    for i in range(len(prob)):
        m = np.array([[float(v) > params["threshold"] for v in row] for row in prob[i]])
        if rule:
            w = rule["w"]
            pe = (w * float(p_empty[i]) if w > 0 else 0.0) + (1 - w) * (1 - float(p_salt[i]))
            if pe > rule["threshold"]:
                m[:] = False
        if m.sum() < params.get("min_area", 0):
            m[:] = False
        if params.get("vertical") and ids[i] in propagated:
            m = propagated[ids[i]]
        if params.get("constant_empty") and all(v == images[i][0][0] for row in images[i] for v in row):
            m = np.zeros_like(m)
        out[i] = m
    return out


def fold_mean(fold_preds):
    """Reference for joining the folds: (prob, p_salt, p_empty) of each fold, averaged one fold after
    another in float32, the probabilities stored as float16 as the predict commands store them."""
    k = len(fold_preds)
    prob = sum(f[0].astype(np.float32) for f in fold_preds) / np.float32(k)
    p_salt = sum(f[1].astype(np.float32) for f in fold_preds) / np.float32(k)
    p_empty = None if fold_preds[0][2] is None else sum(np.asarray(f[2], np.float64) for f in fold_preds) / k
    return prob.astype(np.float16), p_salt.astype(np.float16), p_empty


def fold_vote(fold_preds, params):
    """What ensemble.submit wrote before the mean: the rules on each fold's prediction, then each pixel's
    majority over the folds."""
    return sum(slow_rules(*p, params).astype(int) for p in fold_preds) * 2 > len(fold_preds)


def expected_fp(data_dir, out):
    """The run fingerprint, computed here from the recipe (data fingerprint + sha1 of folds.csv)."""
    tr = load_train(data_dir)
    return fingerprint(tr.ids, tr.images, tr.masks)[:12] + "-" + \
        hashlib.sha1((Path(out) / "folds.csv").read_bytes()).hexdigest()[:12]


def blur(masks, passes=3):
    """Box-blur bool masks (N,H,W) a few times (float32)."""
    x = masks.astype(np.float32)
    for _ in range(passes):
        p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        x = sum(p[:, 1 + dy:p.shape[1] - 1 + dy, 1 + dx:p.shape[2] - 1 + dx]
                for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    return x


def make_run(data_dir, out, classifier=True, seed=0):
    """Fabricate OUT: folds.csv, segmenter oof.npz + metrics.json, classifier oof.npz + metrics.json."""
    rng = np.random.default_rng(seed)
    tr = load_train(data_dir)
    folds = load_or_make_folds(out, tr.ids, tr.masks, k=3)
    fold = folds.set_index("id").loc[tr.ids, "fold"].to_numpy()
    fp = expected_fp(data_dir, out)
    n = len(tr.ids)
    empty = ~tr.masks.reshape(n, -1).any(axis=1)
    prob = blur(tr.masks) * 0.8 + 0.1 + rng.normal(0, 0.12, tr.masks.shape)
    yy, xx = np.mgrid[:101, :101]
    for i in np.flatnonzero(empty)[::2]:  # false-positive blobs on half the empty images
        cy, cx = rng.integers(20, 80, 2)
        prob[i][(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 0.8
    prob = np.clip(prob, 0, 1).astype(np.float16)
    p_salt = np.clip(np.where(empty, 0.35, 0.65) + rng.normal(0, 0.2, n), 0, 1).astype(np.float16)
    order = rng.permutation(n)  # files need not be in id order
    ids = np.array(tr.ids)[order]
    save_npz(Path(out) / "segmenter" / "oof.npz", ids=ids, fold=fold[order], prob=prob[order], p_salt=p_salt[order])
    write_json(Path(out) / "segmenter" / "metrics.json",
               {"fingerprint": fp, "encoder_init": "random", "preset": "smoke", "wall_s": 12.5,
                "folds": [], "overall": {"score": 0.5}})
    if classifier:
        p_empty = np.where(empty, rng.uniform(0.55, 1.0, n), rng.uniform(0.0, 0.45, n))
        save_npz(Path(out) / "classifier" / "oof.npz", ids=ids, fold=fold[order], p_empty=p_empty[order])
        write_json(Path(out) / "classifier" / "metrics.json",
                   {"fingerprint": fp, "encoder_init": "imagenet", "preset": "smoke", "wall_s": 7.0,
                    "backbone": "densenet121", "folds": [], "overall": {"auc": 0.9}})
    return fp


def make_preds(data_dir, out, name, fp, ids=None, classifier=True, seed=1, folds=None, clf_folds=None,
               wall_s=(None, None)):
    """Fabricate test predictions pred-NAME.npz for the segmenter (and the classifier). With `folds`, each
    fold's own arrays too (prob_fold{k}, p_salt_fold{k}, p_empty_fold{k}, folds), the means of which are
    prob, p_salt, p_empty; `clf_folds` (default `folds`) for the classifier's file alone; `wall_s`, the
    seconds each file says its prediction took (None: no wall_s, as in files from before it was kept)."""
    rng = np.random.default_rng(seed)
    all_ids, images = load_images(Path(data_dir) / "test" / "images")
    ids = list(all_ids) if ids is None else list(ids)
    m = len(ids)
    prob = rng.uniform(0, 1, (m, 101, 101)).astype(np.float16)
    prob[: m // 2] = (blur(rng.uniform(0, 1, (m // 2, 101, 101)) > 0.5, passes=4)).astype(np.float16)
    p_salt = rng.uniform(0, 1, m).astype(np.float16)
    p_empty = rng.uniform(0, 1, m)
    seg, clf, by_fold = {}, {}, []
    clf_folds = folds if clf_folds is None else clf_folds
    if folds:
        for k in folds:  # each fold: the common prediction plus noise of its own
            pk = np.clip(prob + rng.normal(0, 0.3, prob.shape), 0, 1).astype(np.float16)
            sk = np.clip(p_salt + rng.normal(0, 0.3, m), 0, 1).astype(np.float16)
            ek = np.clip(p_empty + rng.normal(0, 0.3, m), 0, 1)
            by_fold.append((pk, sk, ek))
            seg.update({f"prob_fold{k}": pk, f"p_salt_fold{k}": sk})
            if k in clf_folds:
                clf[f"p_empty_fold{k}"] = ek[::-1]
        prob = np.mean([f[0].astype(np.float32) for f in by_fold], axis=0).astype(np.float16)
        p_salt = np.mean([f[1].astype(np.float32) for f in by_fold], axis=0).astype(np.float16)
        p_empty = np.mean([f[2] for f in by_fold], axis=0)
        seg["folds"] = np.array(folds)
        if clf_folds:
            clf["folds"] = np.array(clf_folds)
    if wall_s[0] is not None:
        seg["wall_s"] = np.array(wall_s[0])
    if wall_s[1] is not None:
        clf["wall_s"] = np.array(wall_s[1])
    save_npz(Path(out) / "segmenter" / f"pred-{name}.npz", ids=np.array(ids), prob=prob, p_salt=p_salt,
             fingerprint=np.array(fp), **seg)
    if classifier:
        save_npz(Path(out) / "classifier" / f"pred-{name}.npz", ids=np.array(ids[::-1]), p_empty=p_empty[::-1],
                 fingerprint=np.array(fp), **clf)
    return {"ids": ids, "prob": prob, "p_salt": p_salt, "p_empty": p_empty, "by_fold": by_fold}


WALL = np.zeros((101, 101), bool)
WALL[:, 30:50] = True  # a vertical mask: every row equal, neither empty nor all salt


def mosaic_df(cells):
    """A mosaic table from {(mosaic, row, col): id}."""
    return pd.DataFrame([{"id": i, "mosaic": m, "row": r, "col": c} for (m, r, c), i in cells.items()])


def textured(n, seed=0):
    """n random (not constant) uint8 images."""
    return np.random.default_rng(seed).integers(0, 256, (n, 101, 101), dtype=np.uint8)


def cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def data_dir(request, tmp_path_factory):
    try:
        return Path(request.getfixturevalue("synthetic_data"))
    except pytest.FixtureLookupError:
        from salt.synthetic import make_dataset

        return Path(make_dataset(tmp_path_factory.mktemp("synth") / "data", 60, 10, seed=0))


@pytest.fixture(scope="module")
def tuned(data_dir, tmp_path_factory):
    """A fabricated run folder, tuned once: (out, fingerprint, tuning)."""
    out = tmp_path_factory.mktemp("run")
    fp = make_run(data_dir, out)
    return out, fp, tune(data_dir, out)


@pytest.fixture
def run_copy(tuned, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tuned[0], out)
    return out, tuned[1]


# ---------------------------------------------------------------------------------------- the rules
def test_apply_rules_matches_slow_loop():
    rng = np.random.default_rng(3)
    n = 12
    prob = rng.uniform(0, 1, (n, 101, 101)).astype(np.float16)
    prob[::3] = (prob[::3] > 0.9) * 0.6  # small areas on some images
    p_salt, p_empty = rng.permutation(np.linspace(0, 1, n)), rng.permutation(np.linspace(0, 1, n))
    ids = [f"i{k}" for k in range(n)]
    images = textured(n)
    images[[1, 4]] = 77  # constant images
    propagated = {"i2": WALL, "i7": WALL}
    ctx = TileContext(ids, np.array([k in (1, 4) for k in range(n)]), propagated)
    for params in [{"threshold": 0.5, "empty_rule": {"w": 0.3, "threshold": 0.45}, "min_area": 1100},
                   {"threshold": 0.42, "empty_rule": {"w": 1.0, "threshold": 0.6}, "min_area": 0},
                   {"threshold": 0.58, "empty_rule": None, "min_area": 1030},
                   {"threshold": 0.42, "empty_rule": None, "min_area": 0, "vertical": True, "constant_empty": True}]:
        want = slow_rules(prob, p_salt, p_empty, params, ids, propagated, images)
        assert 0 < want.reshape(n, -1).any(axis=1).sum() < n  # the case is not trivial
        np.testing.assert_array_equal(apply_rules(prob, p_salt, p_empty, params, ctx), want)
    seg_only = {"threshold": 0.5, "empty_rule": {"w": 0.0, "threshold": 0.5}, "min_area": 0}
    np.testing.assert_array_equal(apply_rules(prob, p_salt, None, seg_only), slow_rules(prob, p_salt, None, seg_only))
    with pytest.raises(UserError, match="no mosaic"):
        apply_rules(prob, p_salt, p_empty, {**seg_only, "vertical": True}, TileContext(ids, ctx.constant, None))


def test_threshold_tables_match_the_metric():
    rng = np.random.default_rng(2)
    n = 9
    truth = rng.uniform(size=(n, 101, 101)) < rng.uniform(0, 0.5, (n, 1, 1))
    truth[:3] = False
    prob = np.clip(truth * 0.4 + rng.uniform(0, 0.6, truth.shape), 0, 1).astype(np.float16)
    prob[4] = 0.5  # every pixel exactly on a threshold of the grid
    score, area = threshold_tables(truth, prob, MASK_THRESHOLDS, chunk=4)
    for j, t in enumerate(MASK_THRESHOLDS):
        pred = prob.astype(np.float64) > t
        np.testing.assert_array_equal(area[j], pred.reshape(n, -1).sum(axis=1))
        np.testing.assert_array_equal(score[j], image_scores(truth, pred))


def test_threshold_is_brute_force_best():
    rng = np.random.default_rng(5)
    n = 30
    truth = np.stack([square(*rng.integers(0, 60, 2), *rng.integers(5, 40, 2)) if i % 3 else
                      np.zeros((101, 101), bool) for i in range(n)])
    prob = np.clip(blur(truth, 4) * 0.7 + rng.normal(0.15, 0.15, truth.shape), 0, 1).astype(np.float16)
    fold = np.arange(n) % 3
    res = tune_arrays(truth, prob, np.full(n, 0.5), None, fold)
    brute = [competition_score(truth, prob.astype(np.float64) > t) for t in MASK_THRESHOLDS]
    best = first_best(brute)
    assert res["params"]["threshold"] == pytest.approx(MASK_THRESHOLDS[best])
    assert res["steps"][0]["overall"] == pytest.approx(brute[best])
    np.testing.assert_allclose(res["sweeps"]["threshold"]["score"], brute)
    assert len(set(np.round(brute, 6))) > 3  # the threshold matters here
    per_fold = [competition_score(truth[fold == k], prob[fold == k].astype(np.float64) > MASK_THRESHOLDS[best])
                for k in range(3)]
    np.testing.assert_allclose(res["steps"][0]["folds"], per_fold)
    # nested: fold k is scored with the threshold that is best on the other two folds
    for k in range(3):
        other = [competition_score(truth[fold != k], prob[fold != k].astype(np.float64) > t) for t in MASK_THRESHOLDS]
        t_k = MASK_THRESHOLDS[first_best(other)]  # here two thresholds tie on each pair of folds
        assert res["steps"][0]["nested"]["params"][k]["threshold"] == pytest.approx(t_k)
        assert res["steps"][0]["nested"]["folds"][k] == pytest.approx(
            competition_score(truth[fold == k], prob[fold == k].astype(np.float64) > t_k))


def first_best(scores):
    """The first of the best scores (equal within rounding: the tuning's tie rule)."""
    return int(np.flatnonzero(np.asarray(scores) >= max(scores) - 1e-12)[0])


def _empty_case(n=40):
    """Half the truths empty; non-empty predicted perfectly; half the empty ones get a false blob."""
    truth = np.zeros((n, 101, 101), bool)
    truth[n // 2:] = square(20, 20, 30, 30)  # area 900
    prob = np.where(truth, 0.9, 0.05).astype(np.float16)
    prob[: n // 4, 60:75, 60:75] = 0.9  # area 225 false positives on images 0..n/4-1
    empty = np.arange(n) < n // 2
    return truth, prob, empty, np.arange(n) % 4


def test_classifier_rule_kept_when_it_helps():
    truth, prob, empty, fold = _empty_case()
    p_empty = np.where(empty, 0.9, 0.1) + np.linspace(-0.04, 0.04, len(truth))
    res = tune_arrays(truth, prob, np.full(len(truth), 0.5), p_empty, fold)
    s1, s2 = res["steps"][0], res["steps"][1]
    assert s1["overall"] == pytest.approx(0.75)  # 10 of 40 images score 0
    assert s2["kept"] and s2["overall"] == pytest.approx(1.0)
    # by hand: the false blobs are on images 0..9, i.e. 3, 3, 2, 2 of each fold's 10 images, and any
    # P(empty) threshold between the two groups (as fitted on the other folds) zeroes exactly them
    assert s2["gains"] == pytest.approx([0.3, 0.3, 0.2, 0.2])
    assert s2["gain_mean"] == pytest.approx(0.25) and s2["gain_se"] == pytest.approx(np.std([3, 3, 2, 2], ddof=1) / 20)
    assert res["params"]["empty_rule"]["w"] == 1.0
    assert 0.14 < res["params"]["empty_rule"]["threshold"] < 0.86  # between the two groups
    assert res["final"]["overall"] == pytest.approx(1.0) and res["final"]["nested"]["overall"] == pytest.approx(1.0)
    assert not res["steps"][2]["kept"] and not res["steps"][3]["kept"]  # nothing left to gain
    assert res["steps"][4]["overall"] is None and res["steps"][5]["overall"] is None  # no mosaic, no images


@pytest.mark.parametrize("kind", ["adversarial", "constant"])
def test_classifier_rule_rejected_when_useless(kind):
    truth, prob, empty, fold = _empty_case()
    p_empty = np.where(empty, 0.1, 0.9) if kind == "adversarial" else np.full(len(truth), 0.5)
    res = tune_arrays(truth, prob, np.full(len(truth), 0.5), p_empty, fold)
    assert not res["steps"][1]["kept"] and not res["steps"][2]["kept"]
    assert res["params"]["empty_rule"] is None
    assert res["steps"][1]["overall"] <= 0.75


def test_segmenter_head_alone_can_be_kept():
    truth, prob, empty, fold = _empty_case()
    res = tune_arrays(truth, prob, np.where(empty, 0.2, 0.8), None, fold)
    assert not res["steps"][1]["kept"] and res["steps"][1]["overall"] is None  # no classifier
    assert res["steps"][2]["kept"] and res["params"]["empty_rule"]["w"] == 0.0
    assert res["final"]["overall"] == pytest.approx(1.0)


def test_min_area_hand_worked():
    # A, B: empty truth with false blobs of 5 and 7 pixels (score 0 each unless dropped);
    # C: a correctly predicted 12-pixel mask; D: a correctly predicted 400-pixel mask. Folds: A, C | B, D.
    truth = np.stack([np.zeros((101, 101), bool), np.zeros((101, 101), bool),
                      square(10, 10, 3, 4), square(50, 50, 20, 20)])
    pred = np.stack([square(5, 5, 1, 5), square(80, 80, 1, 7), truth[2], truth[3]])
    prob = np.where(pred, 0.9, 0.1).astype(np.float16)
    res = tune_arrays(truth, prob, np.ones(4), None, np.array([0, 1, 0, 1]), thresholds=[0.5],
                      min_areas=[0, 5, 10, 15, 20])
    # a=0: 0.5; a=5: nothing below 5 -> 0.5; a=10: A, B dropped -> 1.0; a=15, 20: C dropped too -> 0.75
    np.testing.assert_allclose(res["sweeps"]["min_area"]["score"], [0.5, 0.5, 1.0, 0.75, 0.75])
    step = res["steps"][3]
    assert step["kept"] and res["params"]["min_area"] == 10
    assert step["folds"] == [1.0, 1.0] and step["in_sample_gain"] == 0.5
    # nested: on fold 1 alone (B, D) 10, 15 and 20 tie and the first wins; on fold 0 alone (A, C) only 10
    # is best; each held-out fold then goes from 0.5 to 1.0
    assert [p["min_area"] for p in step["nested"]["params"]] == [10, 10]
    assert step["gains"] == [0.5, 0.5] and step["gain_se"] == 0.0
    assert res["final"]["overall"] == 1.0 and res["steps"][0]["overall"] == 0.5


# ------------------------------------------------------------------------------- the nested decision
def test_decide_by_hand():
    assert decide([0.3, 0.3, 0.2, 0.2]) == (True, pytest.approx(0.25), pytest.approx(0.0577350 / 2))
    assert decide([0.1, 0.1])[0]                 # no spread: any positive gain is above its noise
    assert not decide([0.0, 0.0, 0.0])[0]        # nothing gained
    kept, mean, se = decide([0.5, -0.25, 0.0])   # positive on average, but within its noise
    assert not kept and mean == pytest.approx(1 / 12) and se == pytest.approx(0.2204793)


def test_nested_rejects_a_rule_that_fits_noise():
    # min_area on 3 folds of 2 images each, thresholds [0.5], min areas 0, 10, 20:
    #   fold 0: E0 empty, false blob of 12 px; T0 30 px, right    fold 1: E1 as E0; T1 as T0
    #   fold 2: S2 8 px, right; T2 30 px, right
    # in-sample: a=0 4/6, a=10 3/6 (S2 lost), a=20 5/6 (E0, E1 saved, S2 lost): a=20 "gains" 1/6.
    # nested: fold 0 held out: on folds 1, 2 a=0 and a=20 tie at 3/4, the first (0) wins: gain 0;
    #   fold 1 likewise: gain 0; fold 2 held out: on folds 0, 1 a=20 wins (4/4), and loses S2: 1.0 -> 0.5.
    empty = np.zeros((101, 101), bool)
    truth = np.stack([empty, square(50, 50, 5, 6), empty, square(50, 50, 5, 6), square(10, 10, 2, 4),
                      square(50, 50, 5, 6)])
    pred = truth.copy()
    pred[0], pred[2] = square(80, 80, 3, 4), square(80, 80, 3, 4)
    prob = np.where(pred, 0.9, 0.1).astype(np.float16)
    res = tune_arrays(truth, prob, np.ones(6), None, np.array([0, 0, 1, 1, 2, 2]), thresholds=[0.5],
                      min_areas=[0, 10, 20])
    step = res["steps"][3]
    np.testing.assert_allclose(res["sweeps"]["min_area"]["score"], [4 / 6, 3 / 6, 5 / 6])
    assert step["params"] == {"min_area": 20} and step["overall"] == pytest.approx(5 / 6)  # in-sample: better
    assert step["in_sample_gain"] == pytest.approx(1 / 6)
    assert [p["min_area"] for p in step["nested"]["params"]] == [0, 0, 20]
    assert step["gains"] == pytest.approx([0.0, 0.0, -0.5])
    assert step["nested"]["folds"] == pytest.approx([0.5, 0.5, 0.5])
    assert step["gain_mean"] == pytest.approx(-1 / 6) and not step["kept"]
    assert res["params"]["min_area"] == 0
    assert res["final"]["nested"]["overall"] == pytest.approx(4 / 6) == res["final"]["overall"]


def _constant_case(flips):
    """Images in 3 folds (2, 4, 4 images); `flips`: indices of constant images, each a false positive on an
    empty truth (+) or a correct salt prediction (-, as (i, "salt"))."""
    n = 10
    fold = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    truth = np.stack([square(20, 20, 30, 30)] * n)
    images = textured(n)
    for f in flips:
        i, kind = f if isinstance(f, tuple) else (f, "empty")
        images[i] = 120
        if kind == "empty":
            truth[i] = False
    pred = np.stack([square(20, 20, 30, 30)] * n)  # every image predicted as salt: right where truth has it
    prob = np.where(pred, 0.9, 0.1).astype(np.float16)
    ids = [f"c{i}" for i in range(n)]
    return tune_arrays(truth, prob, np.ones(n), None, fold, oof_context(ids, images, fold, truth),
                       thresholds=[0.5], min_areas=[0])


def test_nested_keeps_a_clearly_helpful_rule():
    # constant images with false positives: 1 of fold 0's 2 images, 1 of fold 1's 4, 2 of fold 2's 4
    res = _constant_case([0, 2, 6, 7])
    step = res["steps"][5]
    assert step["rule"] == "constant" and step["params"] == {"constant_empty": True, "images": 4}
    assert step["gains"] == pytest.approx([0.5, 0.25, 0.5])
    assert step["gain_mean"] == pytest.approx(5 / 12)
    assert step["gain_se"] == pytest.approx(np.std([0.5, 0.25, 0.5], ddof=1) / np.sqrt(3))
    assert step["kept"] and res["params"]["constant_empty"] is True
    assert res["final"]["overall"] == 1.0 and res["final"]["nested"]["folds"] == [1.0, 1.0, 1.0]


def test_nested_rejects_a_gain_within_its_noise():
    # fold 0: 2 constant false positives of 4 (+0.5); fold 1: a constant image with salt, predicted right,
    # that the rule empties (-0.25); fold 2: nothing (0). In-sample +1/12, nested mean +1/12 < s.e. 0.22.
    n = 12
    fold = np.repeat([0, 1, 2], 4)
    truth = np.stack([square(20, 20, 30, 30)] * n)
    truth[[0, 1]] = False
    images = textured(n)
    images[[0, 1, 4]] = 9
    prob = np.where(np.stack([square(20, 20, 30, 30)] * n), 0.9, 0.1).astype(np.float16)
    ctx = oof_context([f"x{i}" for i in range(n)], images, fold, truth)
    res = tune_arrays(truth, prob, np.ones(n), None, fold, ctx, thresholds=[0.5], min_areas=[0])
    step = res["steps"][5]
    assert step["in_sample_gain"] == pytest.approx(1 / 12) and step["overall"] > res["steps"][0]["overall"]
    assert step["gains"] == pytest.approx([0.5, -0.25, 0.0])
    assert step["gain_se"] == pytest.approx(0.2204793) and not step["kept"]
    assert res["params"]["constant_empty"] is False


# ------------------------------------------------------------------------------------------- mosaic
def _mosaic_case():
    """Train tiles in folds 0 and 1 on one mosaic (and a test tile T), truth walls everywhere but on G's
    neighbours; the model finds the walls of A, C, E, G and misses those of B, D, F, H.
        col 0: A (fold 0) above B (fold 1)      -> B gets A's wall (A labelled for fold 1)
        col 1: C (fold 1) above D (fold 1)      -> D gets nothing (C is in D's own fold)
        col 2: E (fold 1) above F (fold 0)      -> F gets E's wall
        col 3: G (fold 0) above T (test) above H (fold 1)  -> H gets G's wall, through the unlabelled T"""
    ids = list("ABCDEFGH")
    fold = np.array([0, 1, 1, 1, 1, 0, 0, 1])
    cells = {(0, 0, 0): "A", (0, 1, 0): "B", (0, 0, 1): "C", (0, 1, 1): "D", (0, 0, 2): "E", (0, 1, 2): "F",
             (0, 0, 3): "G", (0, 1, 3): "T", (0, 2, 3): "H"}
    truth = np.stack([WALL] * 8)
    found = np.array([i in "ACEG" for i in ids])
    prob = np.where(found[:, None, None] & truth, 0.9, 0.1).astype(np.float16)
    return ids, fold, truth, prob, mosaic_df(cells)


def test_vertical_mask_propagates_only_from_another_fold():
    ids, fold, truth, prob, mosaic = _mosaic_case()
    ctx = oof_context(ids, textured(8), fold, truth, mosaic)
    assert sorted(ctx.propagated) == ["B", "F", "H"]  # not D: the tile above it is in its own fold
    for i in "BFH":
        np.testing.assert_array_equal(ctx.propagated[i], WALL)
    res = tune_arrays(truth, prob, np.ones(8), None, fold, ctx, thresholds=[0.5], min_areas=[0])
    step = res["steps"][4]
    assert step["rule"] == "vertical" and step["params"] == {"vertical": True, "tiles": 3}
    # fold 0 (A, F, G): F 0 -> 1, gain 1/3; fold 1 (B, C, D, E, H): B and H 0 -> 1, gain 2/5
    assert step["gains"] == pytest.approx([1 / 3, 2 / 5]) and step["kept"]
    assert step["gain_se"] == pytest.approx(np.std([1 / 3, 2 / 5], ddof=1) / np.sqrt(2))
    assert res["params"]["vertical"] is True
    assert res["final"]["nested"]["folds"] == pytest.approx([1.0, 4 / 5])  # D is still missed
    masks = apply_rules(prob, np.ones(8), None, res["params"], ctx)
    assert [bool(m.any()) for m in masks] == [True, True, True, False, True, True, True, True]
    # the same tiles, all in one fold: no tile sees a labelled neighbour
    assert oof_context(ids, None, np.zeros(8), truth, mosaic).propagated == {}


def test_submit_context_labels_every_training_tile():
    cells = {(0, 0, 0): "A", (0, 1, 0): "t1", (0, 2, 0): "t2", (0, 3, 0): "B", (0, 4, 0): "t3",
             (1, 0, 0): "C", (1, 1, 0): "t4"}
    masks = np.stack([WALL, np.zeros((101, 101), bool), square(0, 0, 50, 101)])  # A wall, B empty, C not vertical
    images = textured(5)
    images[4] = 3
    ctx = submit_context(["t1", "t2", "t3", "t4", "t5"], images, ["A", "B", "C"], masks, mosaic_df(cells))
    assert sorted(ctx.propagated) == ["t1", "t2"]  # down A's column until the labelled B
    np.testing.assert_array_equal(ctx.propagated["t2"], WALL)
    assert ctx.constant.tolist() == [False, False, False, False, True]


def test_recorded_scores_are_apply_rules_scores():
    """Every score tuning records (in-sample and nested, per fold) is the metric of apply_rules' masks."""
    rng = np.random.default_rng(8)
    n = 36
    fold = np.arange(n) % 3
    ids = [f"r{i:02d}" for i in range(n)]
    truth = np.zeros((n, 101, 101), bool)
    missed = np.zeros(n, bool)
    cells = {}
    for i in range(n):  # 6 columns of 6 tiles, folds mixed down each column
        col, row = divmod(i, 6)
        if col % 2 == 0 and row < 3:  # a wall 3 tiles deep, alone in its column; the model misses its lower part
            truth[i], missed[i] = WALL, row > 0
            cells[(0, row, col)] = ids[i]
        elif col % 2 and i % 3:
            truth[i] = square(*rng.integers(0, 60, 2), *rng.integers(3, 40, 2))
        if col % 2:
            cells[(0, row, col)] = ids[i]
    prob = np.clip(blur(truth & ~missed[:, None, None], 3) * 0.7 + rng.normal(0.1, 0.1, truth.shape), 0, 1)
    prob = prob.astype(np.float16)
    empty = ~truth.reshape(n, -1).any(axis=1)
    p_salt = np.clip(np.where(empty, 0.3, 0.7) + rng.normal(0, 0.25, n), 0, 1)
    p_empty = np.clip(np.where(empty, 0.7, 0.3) + rng.normal(0, 0.25, n), 0, 1)
    images = textured(n)
    images[[2, 4, 10, 16, 22, 28]] = 50  # r02 is also below a wall: the constant rule must win there
    ctx = oof_context(ids, images, fold, truth, mosaic_df(cells))
    assert sorted(ctx.propagated) == ["r01", "r02", "r13", "r14", "r25", "r26"]
    res = tune_arrays(truth, prob, p_salt, p_empty, fold, ctx)
    for run in (res, res["segmenter_only"]):
        checked = 0
        for s in run["steps"]:
            if s["overall"] is None:
                continue
            sc = image_scores(truth, apply_rules(prob, p_salt, p_empty, s["all_params"], ctx))
            assert s["overall"] == pytest.approx(sc.mean(), abs=1e-12)
            assert s["folds"] == pytest.approx([sc[fold == k].mean() for k in range(3)], abs=1e-12)
            for k, params in enumerate(s["nested"]["params"]):
                sk = image_scores(truth, apply_rules(prob, p_salt, p_empty, params, ctx))[fold == k]
                assert s["nested"]["folds"][k] == pytest.approx(sk.mean(), abs=1e-12)
            checked += 1
        assert checked >= 5
        assert run["steps"][5]["all_params"]["vertical"] and run["steps"][5]["all_params"]["constant_empty"]
        sc = image_scores(truth, apply_rules(prob, p_salt, p_empty, run["params"], ctx))
        assert run["final"]["overall"] == pytest.approx(sc.mean(), abs=1e-12)


# --------------------------------------------------------------------------------- files and CLIs
def test_tune_writes_tuning_json(tuned):
    out, fp, doc = tuned
    on_disk = json.loads((out / "ensemble" / "tuning.json").read_text())
    assert on_disk["params"] == doc["params"]
    assert on_disk["fingerprint"] == fp and on_disk["fingerprints"]["classifier"] == fp
    assert on_disk["classifier"] is True and on_disk["folds"] == [0, 1, 2]
    steps = on_disk["steps"]
    assert [s["rule"] for s in steps] == ["threshold", "classifier", "combined", "min_area", "vertical", "constant"]
    assert steps[4]["overall"] is None and "mosaic" in steps[4]["note"]  # no OUT/mosaic.csv here
    for s in steps:
        if s["overall"] is not None:
            assert len(s["folds"]) == 3 and len(s["nested"]["folds"]) == 3 and len(s["nested"]["params"]) == 3
    for s in steps[1:]:
        if s["overall"] is not None:
            assert len(s["gains"]) == 3 and s["gain_se"] >= 0
            assert s["kept"] == (s["gain_mean"] > 0 and s["gain_mean"] > s["gain_se"])
    assert steps[1]["kept"]  # the fabricated classifier catches the false blobs, on every fold
    assert on_disk["final"]["overall"] > steps[0]["overall"]
    assert on_disk["final"]["nested"]["overall"] > steps[0]["nested"]["overall"]
    assert on_disk["wall_s"] >= 0 and "params_segmenter_only" in on_disk and "nested" in on_disk["selection"]
    assert on_disk["mosaic"] is None and on_disk["n_constant"] == 0


def test_tune_cli_prints_the_steps(run_copy, data_dir):
    out, _ = run_copy
    r = cli("ensemble.tune", "--data", data_dir, "--out", out)
    assert r.returncode == 0, r.stderr
    t = json.loads((out / "ensemble" / "tuning.json").read_text())
    lines = r.stdout.splitlines()
    assert "nested" in lines[0] and "gain +- s.e." in lines[0] and "in-sample" in lines[0]
    row = [ln for ln in lines if ln.strip().startswith("+ classifier zeroing")][0]
    s = t["steps"][1]
    assert f"{s['nested']['overall']:.4f}" in row and f"{s['gain_mean']:+.4f} +- {s['gain_se']:.4f}" in row
    assert f"{s['overall']:.4f}" in row
    assert f"OOF score {t['final']['nested']['overall']:.4f} nested" in lines[-1]


def _submitted(out, ids):
    got = read_rle_csv(out / "submission.csv")
    return np.stack([got[k] for k in ids]), list(got)


def test_submit_mean_fallback_in_sample_order(run_copy, data_dir):
    from ensemble.submit import submit

    out, fp = run_copy
    p = make_preds(data_dir, out, "t", fp)  # no per-fold arrays: the mean of the folds
    r = cli("ensemble.submit", "--data", data_dir, "--out", out, "--pred", "t")
    assert r.returncode == 0, r.stderr
    assert "submission.csv" in r.stdout and f"{len(p['ids'])} images" in r.stdout
    assert "rules applied to the mean of the fold models' probabilities" in r.stdout
    tuning = json.loads((out / "ensemble" / "tuning.json").read_text())
    want = slow_rules(p["prob"], p["p_salt"], p["p_empty"], tuning["params"])  # the reference, not apply_rules
    got, order = _submitted(out, p["ids"])
    assert order == list(pd.read_csv(Path(data_dir) / "sample_submission.csv", dtype=str)["id"])
    np.testing.assert_array_equal(got, want)
    rec = json.loads((out / "ensemble" / "submit.json").read_text())
    assert rec["n_images"] == len(p["ids"]) and rec["classifier"] is not None
    assert rec["combine"] == "mean" and rec["folds"] is None
    assert rec["n_empty"] == int((~want.reshape(len(want), -1).any(axis=1)).sum())
    first = (out / "submission.csv").read_bytes()
    assert submit(data_dir, out, "t", chunk=3)["n_empty"] == rec["n_empty"]  # three images at a time
    assert (out / "submission.csv").read_bytes() == first


def test_submit_applies_the_rules_to_the_mean_of_the_folds(run_copy, data_dir):
    from ensemble.submit import submit

    out, fp = run_copy
    p = make_preds(data_dir, out, "v", fp, folds=[0, 1, 2])
    tuning = json.loads((out / "ensemble" / "tuning.json").read_text())
    assert tuning["params"]["empty_rule"]["w"] > 0  # the classifier's P(empty) is used
    r = cli("ensemble.submit", "--data", data_dir, "--out", out, "--pred", "v", "--chunk", "4")
    assert r.returncode == 0, r.stderr
    assert "rules applied to the mean of the fold models' probabilities" in r.stdout
    got, _ = _submitted(out, p["ids"])
    np.testing.assert_array_equal(got, slow_rules(*fold_mean(p["by_fold"]), tuning["params"]))
    assert (got != fold_vote(p["by_fold"], tuning["params"])).any()  # not the folds' vote it was before
    rec = json.loads((out / "ensemble" / "submit.json").read_text())
    assert rec["combine"] == "mean" and rec["folds"] == [0, 1, 2]
    # the classifier's models are of other folds than the segmenter's: refused, naming the file
    make_preds(data_dir, out, "w", fp, folds=[0, 1, 2], clf_folds=[0, 1])
    with pytest.raises(UserError, match=r"classifier/pred-w\.npz: folds \[0, 1\] differ"):
        submit(data_dir, out, "w")


def test_submit_records_how_long_the_predictions_took(run_copy, data_dir):
    from ensemble.submit import submit

    out, fp = run_copy
    make_preds(data_dir, out, "s", fp, folds=[0, 1, 2], wall_s=(57.5, 39.25))
    assert submit(data_dir, out, "s")["predict_wall_s"] == {"segmenter": 57.5, "classifier": 39.25}
    rec = json.loads((out / "ensemble" / "submit.json").read_text())
    assert rec["predict_wall_s"] == {"segmenter": 57.5, "classifier": 39.25}
    make_preds(data_dir, out, "o", fp)  # files written before the time was kept
    assert submit(data_dir, out, "o")["predict_wall_s"] == {"segmenter": None, "classifier": None}
    make_preds(data_dir, out, "n", fp, classifier=False, wall_s=(12.0, None))
    assert submit(data_dir, out, "n")["predict_wall_s"] == {"segmenter": 12.0, "classifier": None}
    make_preds(data_dir, out, "b", fp, wall_s=([1.0, 2.0], "soon"))  # not one number: no time, no failure
    assert submit(data_dir, out, "b")["predict_wall_s"] == {"segmenter": None, "classifier": None}


def test_submit_segmenter_only_and_sorted_ids(run_copy, data_dir):
    from ensemble.submit import submit

    out, fp = run_copy
    all_ids, _ = load_images(Path(data_dir) / "test" / "images")
    sub_ids = list(all_ids)[:5][::-1]  # not the sample's folder: rows sorted by id
    p = make_preds(data_dir, out, "s", fp, ids=sub_ids, classifier=False, folds=[0, 1, 2])
    rec = submit(data_dir, out, "s")
    assert rec["classifier"] is None and rec["mode"] == "segmenter only" and rec["combine"] == "mean"
    tuning = json.loads((out / "ensemble" / "tuning.json").read_text())
    want = slow_rules(*fold_mean([(pk, sk, None) for pk, sk, _ in p["by_fold"]]), tuning["params_segmenter_only"])
    got, order = _submitted(out, p["ids"])
    assert order == sorted(sub_ids)
    np.testing.assert_array_equal(got, want)


def _rewrite_mask(data, i, mask):
    """Give train image `i` of a data copy a new mask (PNG and train.csv)."""
    import cv2

    cv2.imwrite(str(data / "train" / "masks" / f"{i}.png"), mask.astype(np.uint16) * 65535)
    df = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    df.loc[df["id"] == i, "rle_mask"] = encode(mask)
    df.to_csv(data / "train.csv", index=False)


def test_submit_tile_rules_after_the_model_rules(run_copy, data_copy):
    import cv2
    from ensemble.submit import submit

    out, fp = run_copy
    train_id = load_train(data_copy).ids[0]
    _rewrite_mask(data_copy, train_id, WALL)
    test_ids, _ = load_images(data_copy / "test" / "images")
    a, b, c = test_ids[:3]
    cv2.imwrite(str(data_copy / "test" / "images" / f"{c}.png"), np.full((101, 101, 3), 90, np.uint8))
    write_csv(out / "mosaic.csv", mosaic_df({(0, 0, 0): train_id, (0, 1, 0): a, (0, 2, 0): b}))
    path = out / "ensemble" / "tuning.json"
    tuning = json.loads(path.read_text())
    params = {**tuning["params"], "vertical": True, "constant_empty": True}
    write_json(path, {**tuning, "params": params})
    p = make_preds(data_copy, out, "m", fp, folds=[0, 1, 2])
    rec = submit(data_copy, out, "m", chunk=2)
    want = slow_rules(*fold_mean(p["by_fold"]), {**params, "vertical": False, "constant_empty": False})
    pos = {k: n for n, k in enumerate(p["ids"])}
    assert want[pos[c]].any() and (want[pos[a]] != WALL).any()  # the tile rules change these
    want[pos[a]] = want[pos[b]] = WALL
    want[pos[c]] = False
    got, _ = _submitted(out, p["ids"])
    np.testing.assert_array_equal(got, want)
    assert rec["tile_rules"] == {"vertical_tiles": 2, "constant_images": 1} and rec["combine"] == "mean"
    (out / "mosaic.csv").unlink()
    with pytest.raises(UserError, match=r"mosaic\.csv: not found"):
        submit(data_copy, out, "m")


@pytest.mark.parametrize("existing", [True, False])
def test_submit_fingerprint_mismatch_cli(run_copy, data_dir, existing):
    out, fp = run_copy
    make_preds(data_dir, out, "bad", "0123456789ab-ba9876543210")
    sub = out / "submission.csv"
    if existing:
        sub.write_text("old submission\n")
    r = cli("ensemble.submit", "--data", data_dir, "--out", out, "--pred", "bad")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "pred-bad.npz" in lines[0]
    assert (sub.read_text() == "old submission\n") if existing else not sub.exists()
    assert not (out / "ensemble" / "submit.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_submit_missing_prediction_names_target(run_copy, data_dir):
    from ensemble.submit import submit

    out, _ = run_copy
    with pytest.raises(UserError, match=r"pred-nope\.npz: not found; run make"):
        submit(data_dir, out, "nope")


def test_tune_fingerprint_mismatch_cli(run_copy, data_dir):
    out, fp = run_copy
    (out / "ensemble" / "tuning.json").unlink()
    m = json.loads((out / "classifier" / "metrics.json").read_text())
    write_json(out / "classifier" / "metrics.json", {**m, "fingerprint": "ffffffffffff-000000000000"})
    r = cli("ensemble.tune", "--data", data_dir, "--out", out)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "classifier/metrics.json: model trained on other data or folds" in lines[0]
    assert fp in lines[0] and "ffffffffffff-000000000000" in lines[0]
    assert not (out / "ensemble" / "tuning.json").exists()


def test_tune_segmenter_only_run(data_dir, tmp_path):
    fp = make_run(data_dir, tmp_path, classifier=False)
    doc = tune(data_dir, tmp_path)
    assert doc["classifier"] is False and doc["fingerprints"]["classifier"] is None
    assert doc["params"] == doc["params_segmenter_only"]
    assert doc["fingerprint"] == fp
