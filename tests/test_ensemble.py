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
from salt.metric import competition_score
from salt.rle import read_rle_csv
from ensemble.tune import THRESHOLDS, apply_rules, tune, tune_arrays

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ helpers
def square(y, x, h, w, size=101):
    m = np.zeros((size, size), dtype=bool)
    m[y:y + h, x:x + w] = True
    return m


def slow_rules(prob, p_salt, p_empty, params):
    """Reference for apply_rules: one image and one pixel comparison at a time, float64."""
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
        out[i] = m
    return out


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
    """Fabricate OUT: folds.csv, segmenter oof.npz + metrics.json, classifier oof.csv + metrics.json."""
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
        write_csv(Path(out) / "classifier" / "oof.csv",
                  pd.DataFrame({"id": ids, "fold": fold[order], "p_empty": p_empty[order]}))
        write_json(Path(out) / "classifier" / "metrics.json",
                   {"fingerprint": fp, "encoder_init": "imagenet", "preset": "smoke", "wall_s": 7.0,
                    "backbone": "densenet121", "folds": [], "overall": {"auc": 0.9}})
    return fp


def make_preds(data_dir, out, name, fp, ids=None, classifier=True, seed=1):
    """Fabricate test predictions pred-NAME.npz for the segmenter (and the classifier)."""
    rng = np.random.default_rng(seed)
    all_ids, images = load_images(Path(data_dir) / "test" / "images")
    ids = list(all_ids) if ids is None else list(ids)
    m = len(ids)
    prob = rng.uniform(0, 1, (m, 101, 101)).astype(np.float16)
    prob[: m // 2] = (blur(rng.uniform(0, 1, (m // 2, 101, 101)) > 0.5, passes=4)).astype(np.float16)
    p_salt = rng.uniform(0, 1, m).astype(np.float16)
    p_empty = rng.uniform(0, 1, m)
    save_npz(Path(out) / "segmenter" / f"pred-{name}.npz", ids=np.array(ids), prob=prob, p_salt=p_salt,
             fingerprint=np.array(fp))
    if classifier:
        save_npz(Path(out) / "classifier" / f"pred-{name}.npz", ids=np.array(ids[::-1]), p_empty=p_empty[::-1],
                 fingerprint=np.array(fp))
    return ids, prob, p_salt, p_empty


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
    for params in [{"threshold": 0.5, "empty_rule": {"w": 0.3, "threshold": 0.45}, "min_area": 1100},
                   {"threshold": 0.42, "empty_rule": {"w": 1.0, "threshold": 0.6}, "min_area": 0},
                   {"threshold": 0.58, "empty_rule": None, "min_area": 1030}]:
        want = slow_rules(prob, p_salt, p_empty, params)
        assert 0 < want.reshape(n, -1).any(axis=1).sum() < n  # the case is not trivial
        np.testing.assert_array_equal(apply_rules(prob, p_salt, p_empty, params), want)
    seg_only = {"threshold": 0.5, "empty_rule": {"w": 0.0, "threshold": 0.5}, "min_area": 0}
    np.testing.assert_array_equal(apply_rules(prob, p_salt, None, seg_only), slow_rules(prob, p_salt, None, seg_only))


def test_threshold_is_brute_force_best():
    rng = np.random.default_rng(5)
    n = 30
    truth = np.stack([square(*rng.integers(0, 60, 2), *rng.integers(5, 40, 2)) if i % 3 else
                      np.zeros((101, 101), bool) for i in range(n)])
    prob = np.clip(blur(truth, 4) * 0.7 + rng.normal(0.15, 0.15, truth.shape), 0, 1).astype(np.float16)
    fold = np.arange(n) % 3
    res = tune_arrays(truth, prob, np.full(n, 0.5), None, fold)
    brute = [competition_score(truth, prob.astype(np.float64) > t) for t in THRESHOLDS]
    best = int(np.argmax(brute))
    assert res["params"]["threshold"] == pytest.approx(THRESHOLDS[best])
    assert res["steps"][0]["overall"] == pytest.approx(brute[best])
    np.testing.assert_allclose(res["sweeps"]["threshold"]["score"], brute)
    assert len(set(np.round(brute, 6))) > 3  # the threshold matters here
    per_fold = [competition_score(truth[fold == k], prob[fold == k].astype(np.float64) > THRESHOLDS[best])
                for k in range(3)]
    np.testing.assert_allclose(res["steps"][0]["folds"], per_fold)


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
    p_empty = np.where(empty, 0.9, 0.1) + np.linspace(-0.05, 0.05, len(truth))
    res = tune_arrays(truth, prob, np.full(len(truth), 0.5), p_empty, fold)
    s1, s2 = res["steps"][0], res["steps"][1]
    assert s1["overall"] == pytest.approx(0.75)  # 10 of 40 images score 0
    assert s2["kept"] and s2["overall"] == pytest.approx(1.0)
    assert res["params"]["empty_rule"]["w"] == 1.0
    assert 0.15 < res["params"]["empty_rule"]["threshold"] < 0.85
    assert res["final"]["overall"] == pytest.approx(1.0)
    assert not res["steps"][2]["kept"] and not res["steps"][3]["kept"]  # nothing left to gain


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
    # C: a correctly predicted 12-pixel mask; D: a correctly predicted 400-pixel mask.
    truth = np.stack([np.zeros((101, 101), bool), np.zeros((101, 101), bool),
                      square(10, 10, 3, 4), square(50, 50, 20, 20)])
    pred = np.stack([square(5, 5, 1, 5), square(80, 80, 1, 7), truth[2], truth[3]])
    prob = np.where(pred, 0.9, 0.1).astype(np.float16)
    res = tune_arrays(truth, prob, np.ones(4), None, np.array([0, 0, 1, 1]), thresholds=[0.5],
                      min_areas=[0, 5, 10, 15, 20])
    # a=0: 0.5; a=5: nothing below 5 -> 0.5; a=10: A, B dropped -> 1.0; a=15, 20: C dropped too -> 0.75
    np.testing.assert_allclose(res["sweeps"]["min_area"]["score"], [0.5, 0.5, 1.0, 0.75, 0.75])
    assert res["steps"][3]["kept"] and res["params"]["min_area"] == 10
    assert res["steps"][3]["folds"] == [1.0, 1.0]
    assert res["final"]["overall"] == 1.0 and res["steps"][0]["overall"] == 0.5


# --------------------------------------------------------------------------------- files and CLIs
def test_tune_writes_tuning_json(tuned):
    out, fp, doc = tuned
    on_disk = json.loads((out / "ensemble" / "tuning.json").read_text())
    assert on_disk["params"] == doc["params"]
    assert on_disk["fingerprint"] == fp and on_disk["fingerprints"]["classifier"] == fp
    assert on_disk["classifier"] is True and on_disk["folds"] == [0, 1, 2]
    names = [s["name"] for s in on_disk["steps"]]
    assert len(names) == 4 and all(len(s["folds"]) == 3 for s in on_disk["steps"])
    assert on_disk["steps"][1]["kept"]  # the fabricated classifier catches the false blobs
    assert on_disk["final"]["overall"] > on_disk["steps"][0]["overall"]
    assert on_disk["wall_s"] >= 0 and "params_segmenter_only" in on_disk


def test_submit_matches_rules_in_sample_order(run_copy, data_dir):
    from ensemble.submit import submit

    out, fp = run_copy
    ids, prob, p_salt, p_empty = make_preds(data_dir, out, "t", fp)
    r = cli("ensemble.submit", "--data", data_dir, "--out", out, "--pred", "t")
    assert r.returncode == 0, r.stderr
    assert "submission.csv" in r.stdout and f"{len(ids)} images" in r.stdout
    tuning = json.loads((out / "ensemble" / "tuning.json").read_text())
    want = apply_rules(prob, p_salt, p_empty, tuning["params"])
    got = read_rle_csv(out / "submission.csv")
    sample = list(pd.read_csv(Path(data_dir) / "sample_submission.csv", dtype=str)["id"])
    assert list(got) == sample
    for i, k in enumerate(ids):
        np.testing.assert_array_equal(got[k], want[i])
    rec = json.loads((out / "ensemble" / "submit.json").read_text())
    assert rec["n_images"] == len(ids) and rec["classifier"] is not None
    assert rec["n_empty"] == int((~want.reshape(len(ids), -1).any(axis=1)).sum())
    assert submit(data_dir, out, "t")["n_empty"] == rec["n_empty"]


def test_submit_segmenter_only_and_sorted_ids(run_copy, data_dir):
    from ensemble.submit import submit

    out, fp = run_copy
    all_ids, _ = load_images(Path(data_dir) / "test" / "images")
    sub_ids = list(all_ids)[:5][::-1]  # not the sample's folder: rows sorted by id
    ids, prob, p_salt, _ = make_preds(data_dir, out, "s", fp, ids=sub_ids, classifier=False)
    rec = submit(data_dir, out, "s")
    assert rec["classifier"] is None and rec["mode"] == "segmenter only"
    tuning = json.loads((out / "ensemble" / "tuning.json").read_text())
    want = dict(zip(ids, apply_rules(prob, p_salt, None, tuning["params_segmenter_only"])))
    got = read_rle_csv(out / "submission.csv")
    assert list(got) == sorted(sub_ids)
    for k in sub_ids:
        np.testing.assert_array_equal(got[k], want[k])


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
