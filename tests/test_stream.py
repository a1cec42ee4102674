"""The test set predicted and submitted a chunk at a time: the streamed mean of the fold models equals a
slow reference that predicts every image with each model on its own and takes the mean in numpy, and the
submission equals one written row by row from that reference mean with the same rules."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from bench.stream import TUNED, make_models
from salt.data import load_images
from salt.rle import encode
from segmenter.presets import PRESETS as SEG

REPO = Path(__file__).resolve().parents[1]
FOLDS = 3
FP = "streamtest00-000000000000"
N_TEST = 130  # 3 chunks of 64 (the last of 2), 9 batches of 16 (the last padded), 3 submission chunks of 50


def tiny_classifier():
    """A small stand-in for the classifier's backbone: one output, "empty", as the classifier has."""
    inp = keras.Input((101, 101, 1))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, {"empty": keras.layers.Dense(1, name="empty")(x)})


def cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    """130 synthetic test images predicted by 3 fold models of the smoke preset's segmenter and 3 small
    classifiers, 64 images at a time, and the submission written 50 at a time."""
    from salt.synthetic import make_dataset

    root = tmp_path_factory.mktemp("stream")
    data = make_dataset(root / "data", n_train=5, n_test=N_TEST, seed=3)
    out = root / "out"
    saved = make_models(out, SEG["smoke"], {"stages": [{"name": "finetune"}]}, FOLDS, fingerprint=FP,
                        classifier_builder=tiny_classifier)
    images = data / "test" / "images"
    for model in ("segmenter", "classifier"):
        r = cli(f"{model}.predict", "--out", out, "--images", images, "--name", "s", "--chunk", 64,
                "--batch-size", 16)
        assert r.returncode == 0, r.stderr[-3000:]
    r = cli("ensemble.submit", "--data", data, "--out", out, "--pred", "s", "--chunk", 50)
    assert r.returncode == 0, r.stderr[-3000:]
    return data, out, saved


def reference_probs(model, images, name):
    """One output's probabilities with flip TTA, worked in numpy: a ``predict`` call for the images and one
    for their mirror images, the sigmoid, the mirrored image outputs mirrored back, and the mean of the two
    (not training.predict, which does all of it in one compiled step)."""
    x = images.astype(np.float32)[..., None] / 255.0
    views = []
    for k, view in enumerate([x, np.ascontiguousarray(x[:, :, ::-1])]):
        z = np.asarray(model.predict(view, batch_size=16, verbose=0)[name], np.float64)[..., 0]
        p = 1.0 / (1.0 + np.exp(-z))
        views.append(p[:, :, ::-1] if k and p.ndim == 3 else p)
    return (views[0] + views[1]) / 2


def reference_mean(paths, images, name):
    """Each saved model loaded on its own predicts every image at once; the mean over the models in numpy."""
    probs = [reference_probs(keras.saving.load_model(p, compile=False), images, name) for p in paths]
    return np.mean(np.stack(probs), axis=0).astype(np.float32)


@pytest.fixture(scope="module")
def reference(streamed):
    data, _, saved = streamed
    ids, images = load_images(data / "test" / "images")
    return {"ids": ids, "prob": reference_mean(saved["segmenter"], images, "mask"),
            "p_salt": reference_mean(saved["segmenter"], images, "salt"),
            "p_empty": reference_mean(saved["classifier"], images, "empty")}


def test_streamed_mean_equals_the_reference(streamed, reference):
    _, out, _ = streamed
    ref = reference
    with np.load(out / "segmenter" / "pred-s.npz") as z:
        assert list(z["ids"]) == ref["ids"] and str(z["fingerprint"]) == FP
        assert list(z["folds"]) == list(range(FOLDS)) and int(z["n_models"]) == FOLDS
        assert z["prob"].dtype == np.float16 and z["prob"].shape == (N_TEST, 101, 101)
        assert not [k for k in z.files if "fold" in k and k != "folds"]  # no per-fold arrays any more
        np.testing.assert_allclose(z["prob"].astype(np.float32), ref["prob"], atol=1e-3, rtol=0)  # float16's step
        np.testing.assert_allclose(z["p_salt"].astype(np.float32), ref["p_salt"], atol=1e-3, rtol=0)
    with np.load(out / "classifier" / "pred-s.npz") as z:
        assert list(z["ids"]) == ref["ids"]
        np.testing.assert_allclose(z["p_empty"], ref["p_empty"], atol=1e-6, rtol=1e-5)
    assert ref["prob"].std() > 0.1 and ref["p_empty"].std() > 0.05  # they vary: the comparison can fail


def test_submission_equals_the_reference_row_for_row(streamed, reference):
    data, out, _ = streamed
    ref = reference
    prob = ref["prob"].astype(np.float16)  # as the file holds it
    p_salt = ref["p_salt"].astype(np.float16).astype(np.float64)
    rows = {}
    for k, i in enumerate(ref["ids"]):  # one image at a time, the rules spelled out again
        mask = prob[k].astype(np.float32) > TUNED["threshold"]
        w = TUNED["empty_rule"]["w"]
        if w * float(ref["p_empty"][k]) + (1 - w) * (1 - p_salt[k]) > TUNED["empty_rule"]["threshold"]:
            mask[:] = False
        if mask.sum() < TUNED["min_area"]:
            mask[:] = False
        rows[i] = encode(mask)
    order = list(pd.read_csv(data / "sample_submission.csv", dtype=str)["id"])
    assert order != sorted(order)  # the sample's order, not the prediction's
    want = ["id,rle_mask"] + [f"{i},{rows[i]}" for i in order]
    got = (out / "submission.csv").read_text().splitlines()
    assert got == want
    assert 0 < sum(1 for r in rows.values() if not r) < len(rows) / 2  # some masks empty, most not
    rec = json.loads((out / "ensemble" / "submit.json").read_text())
    assert rec["combine"] == "mean" and rec["n_empty"] == sum(1 for r in rows.values() if not r)


def test_a_bad_image_stops_the_prediction_in_one_line(streamed, tmp_path):
    import shutil

    data, out, _ = streamed
    images = tmp_path / "images"
    shutil.copytree(data / "test" / "images", images)
    bad = sorted(images.iterdir())[-1]
    bad.write_bytes(b"not a png")
    r = cli("classifier.predict", "--out", out, "--images", images, "--name", "bad", "--chunk", 64)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and bad.name in lines[0]
    assert "model 1 of" not in r.stdout  # found before any model ran
    assert not (out / "classifier" / "pred-bad.npz").exists()
    assert not [p for p in (out / "classifier").iterdir() if p.name.startswith(".tmp-")]


def test_the_report_reads_only_the_submitted_masks_it_draws(streamed, tmp_path):
    from ensemble.inputs import submitted_masks
    from salt.cli import UserError
    from salt.rle import read_rle_csv

    _, out, _ = streamed
    sub = out / "submission.csv"
    every = read_rle_csv(sub)
    some = list(every)[5:9] + ["not-an-id"]
    got = submitted_masks(sub, some, chunk=7)
    assert list(got) == some[:4]
    for i in some[:4]:
        np.testing.assert_array_equal(got[i], every[i])
    lines = sub.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines[:3] + [lines[3].split(",")[0] + ",5 3 1 2"] + lines[4:]) + "\n")
    bad_id = lines[3].split(",")[0]
    assert submitted_masks(bad, [lines[1].split(",")[0]])  # the bad row is not read
    with pytest.raises(UserError, match=rf"bad\.csv: id {bad_id}: bad RLE"):
        submitted_masks(bad, [bad_id])
