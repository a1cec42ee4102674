"""Both trainers end to end on synthetic data with the smoke preset, through `make` as a user runs them:
outputs, skipping finished work, resuming after a kill, and refusing bad input."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT
from salt.data import load_train
from salt.metric import competition_score

# The PyTorch backend runs eagerly: no graph to trace per model, so these end-to-end runs take seconds
# instead of minutes. The TensorFlow and JAX paths are trained in tests/test_full_preset.py.
BACKEND = "torch"
ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3", SALT_OFFLINE="1",
           KERAS_BACKEND=BACKEND)


def make(target, data, out, *extra, timeout=600):
    args = ["make", "--no-print-directory", "-C", str(REPO_ROOT), target, f"DATA={data}", f"OUT={out}",
            "PRESET=smoke", "FOLDS=2", f"BACKEND={BACKEND}", *extra]
    return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=timeout)


def python(module, *args, timeout=600):  # as make(): a busy machine took over 300 s (docs/suite.md)
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained_logs(synthetic_data, tmp_path_factory):
    """Both models trained once with the smoke preset, 2 folds: (data, out, {target: its make's stdout})."""
    out = tmp_path_factory.mktemp("trained") / "out"
    logs = {}
    for target in ("train-segmenter", "train-classifier"):
        proc = make(target, synthetic_data, out)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        logs[target] = proc.stdout
    return synthetic_data, out, logs


@pytest.fixture(scope="module")
def trained(trained_logs):
    """(data, out) of ``trained_logs``."""
    return trained_logs[:2]


def test_segmenter_outputs(trained):
    data, out = trained
    train = load_train(data)
    folds = pd.read_csv(out / "folds.csv")
    metrics = json.loads((out / "segmenter" / "metrics.json").read_text())
    assert metrics["encoder_init"] == "random" and metrics["preset"] == "smoke"
    with np.load(out / "segmenter" / "oof.npz") as f:
        assert list(f["ids"]) == train.ids
        assert f["prob"].shape == (len(train.ids), 101, 101) and f["prob"].dtype == np.float16
        assert list(f["fold"]) == list(folds.set_index("id").loc[train.ids, "fold"])
        prob = f["prob"].astype(np.float32)
    # the recorded scores are the competition metric of the saved out-of-fold probabilities
    t = metrics["overall"]["threshold"]
    assert metrics["overall"]["score"] == pytest.approx(competition_score(train.masks, prob > t))
    for row in metrics["folds"]:
        idx = np.flatnonzero(folds.set_index("id").loc[train.ids, "fold"].to_numpy() == row["fold"])
        assert row["score"] == pytest.approx(competition_score(train.masks[idx], prob[idx] > row["threshold"]))
    for r in (1, 2):
        for k in (0, 1):
            stage = out / "segmenter" / f"round{r}" / f"fold{k}"
            assert (stage / "best.keras").exists() and (stage / "done.json").exists()
            assert not list(stage.glob("last-*")) and not list(stage.glob(".tmp-*"))


def test_a_piped_make_prints_one_line_an_epoch_and_the_countdown(trained_logs):
    """`make train-segmenter` (which passes --verbose auto), its stdout a pipe: the smoke preset's 2 folds of
    2 + 1 epochs print one line an epoch and the run's countdown, with no progress bars and none of their
    control codes (tests/test_logs.py: on a terminal, Keras' progress bar)."""
    out = trained_logs[2]["train-segmenter"]
    assert not re.search("[\r\b\x1b]", out), "progress-bar control codes in a piped log"
    epoch_lines = [ln for ln in out.splitlines() if re.match(r"\d+/\d+ - .*loss: ", ln)]
    assert len(epoch_lines) == 6, out  # one line for each of the 2 x 3 epochs, not one per batch
    countdown = [ln for ln in out.splitlines() if ln.startswith("run: ")]
    assert [ln.split(";")[0] for ln in countdown] == [f"run: {k} of 6 epochs done" for k in range(1, 7)]


def test_classifier_outputs(trained):
    data, out = trained
    train = load_train(data)
    metrics = json.loads((out / "classifier" / "metrics.json").read_text())
    with np.load(out / "classifier" / "oof.npz") as f:
        oof = {"id": list(f["ids"]), "p_empty": pd.Series(f["p_empty"])}
    assert oof["id"] == train.ids and oof["p_empty"].between(0, 1).all()
    assert metrics["encoder_init"] == "random", "offline, the classifier must say it started random"
    empty = ~train.masks.reshape(len(train.ids), -1).any(1)
    accuracy = float(np.mean((oof["p_empty"].to_numpy() > 0.5) == empty))
    assert metrics["overall"]["accuracy"] == pytest.approx(accuracy)
    assert [f["fold"] for f in metrics["folds"]] == [0, 1]


def test_pseudo_label_round(trained, tmp_path):
    """A pseudo-label round after the trained rounds: each fold labels the test images with its own
    model (checked against a prediction written here), and trains its training part plus those images."""
    import shutil
    import keras
    import segmenter.unet  # noqa: F401  (the checkpoints' layers)
    from salt.data import load_images

    data, trained_out = trained
    out = tmp_path / "out"
    (out / "segmenter").mkdir(parents=True)
    shutil.copy(trained_out / "folds.csv", out / "folds.csv")
    for r in (1, 2):
        shutil.copytree(trained_out / "segmenter" / f"round{r}", out / "segmenter" / f"round{r}")
    test_ids, test_images = load_images(data / "test" / "images")
    x = test_images.astype(np.float32)[..., None] / 255.0
    prob = {}
    for k in (0, 1):  # each fold's round-2 model, with its mirrored prediction mirrored back
        model = keras.saving.load_model(out / "segmenter" / "round2" / f"fold{k}" / "best.keras", compile=False)
        logit = np.asarray(model.predict(x, verbose=0)["mask"], np.float32)[..., 0]
        mirrored = np.asarray(model.predict(x[:, :, ::-1], verbose=0)["mask"], np.float32)[..., 0][:, :, ::-1]
        prob[k] = (1 / (1 + np.exp(-logit)) + 1 / (1 + np.exp(-mirrored))) / 2
    # a two-epoch model is far from confident: bounds and share chosen so that the rule splits fold 0's images
    low, high = 0.45, 0.55
    sure = {k: ((p < low) | (p > high)).mean(axis=(1, 2)) for k, p in prob.items()}
    share = float(np.median(sure[0]))
    keep = {k: (sure[k] >= share) & (prob[k] > 0.5).any(axis=(1, 2)) for k in prob}
    assert 0 < keep[0].sum() < len(keep[0]), sure[0]
    settings = {"epochs": 1, "lr": 1e-3, "low": low, "high": high, "share": share}
    proc = python("segmenter.train", "--data", data, "--out", out, "--preset", "smoke", "--folds", 2,
                  "--set", f"pseudo={json.dumps(settings)}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folds = pd.read_csv(out / "folds.csv")
    for k in (0, 1):
        with np.load(out / "segmenter" / "round3" / f"pseudo-fold{k}.npz") as f:
            assert list(f["ids"]) == [i for i, y in zip(test_ids, keep[k]) if y]
            np.testing.assert_array_equal(f["images"], test_images[keep[k]])
            differ = np.count_nonzero(f["masks"] != (prob[k][keep[k]] > 0.5))
            assert differ <= 1e-3 * f["masks"].size  # other backend, other rounding
        n_train, n_pseudo = int((folds["fold"] != k).sum()), int(keep[k].sum())
        assert f"fold {k} round 3: lovasz, 1 epochs, lr 0.001, {n_train + n_pseudo} train " \
               f"({n_pseudo} pseudo-labelled)" in proc.stdout
        assert (out / "segmenter" / "round3" / f"fold{k}" / "done.json").exists()
    metrics = json.loads((out / "segmenter" / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1, 2, 3] and metrics["snapshots"] == [3]


def test_repeat_run_skips_finished_work(trained):
    data, out = trained
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.keras")}
    for target in ("train-segmenter", "train-classifier"):
        proc = make(target, data, out)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "fold 0: done, skipped" in proc.stdout and "fold 1: done, skipped" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.keras")} == before


def test_predict_any_folder(trained, tmp_path, call_cli):
    """segmenter.predict on a folder of images (a subprocess, as a user runs it); classifier.predict on an
    empty folder: one line, exit 2 (run in this process: the folder is refused before a model is loaded)."""
    import classifier.predict

    data, out = trained
    proc = python("segmenter.predict", "--out", out, "--images", data / "test" / "images", "--name", "t")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(out / "segmenter" / "pred-t.npz") as f:
        assert len(f["ids"]) == 10 and f["prob"].shape == (10, 101, 101)
        assert 0 <= f["prob"].min() and f["prob"].max() <= 1
        assert f["wall_s"].shape == () and f["wall_s"] > 0  # the seconds it took, for the report
    empty_dir = tmp_path / "none"
    empty_dir.mkdir()
    code, _, err = call_cli(classifier.predict.main, ["--out", out, "--images", empty_dir])
    assert_one_line_error(subprocess.CompletedProcess([], code, "", err), str(empty_dir))


def test_kill_and_resume(synthetic_data, tmp_path):
    """SIGKILL in the middle of fold 0's first round; the same command continues from the last epoch."""
    out = tmp_path / "out"
    args = ["--data", synthetic_data, "--out", out, "--preset", "smoke", "--folds", "2", "--only-fold", "0",
            "--epochs-scale", "2", "--verbose", "2", "--checkpoint-every", "0"]
    state = out / "segmenter" / "round1" / "fold0" / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "segmenter.train", *map(str, args)], cwd=REPO_ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stdout.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 1 <= killed_at < 4
    resumed = python("segmenter.train", *args)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"after epoch {killed_at}" in resumed.stdout
    # fold 0 alone: round 1 of 2 x 2 epochs and round 2 of 1 x 2 (--epochs-scale 2), less those trained
    left = 4 + 2 - killed_at
    done = [line for line in resumed.stdout.splitlines() if line.startswith("run: ")]
    assert len(done) == left and done[0].startswith(f"run: 1 of {left} epochs done;"), done
    assert done[-1].startswith(f"run: {left} of {left} epochs done; 0 s of training left"), done
    log = pd.read_csv(out / "segmenter" / "round1" / "fold0" / "log.csv")
    assert log["epoch"].is_unique and log["epoch"].max() == 3, "every epoch logged once, up to the last"
    assert (out / "segmenter" / "oof" / "fold0.npz").exists()
    assert not (out / "segmenter" / "metrics.json").exists(), "fold 1 is not trained: no metrics yet"
    assert not list(out.rglob(".tmp-*"))


@pytest.mark.parametrize("args, words", [
    (["--preset", "huge"], ["unknown preset", "huge"]),
    (["--folds", "1"], ["--folds 1"]),
    (["--only-fold", "7"], ["--only-fold 7", "out of range"]),
    (["--precision", "half"], ["--precision half"]),
    (["--batch-size", "0"], ["--batch-size 0"]),
])
def test_bad_options(synthetic_data, tmp_path, call_cli, args, words):
    """Checked before any work: one line on stderr, exit 2, nothing written (run in this process: the
    options are read before any model is built)."""
    import classifier.train
    import segmenter.train

    base = ["--data", synthetic_data, "--out", tmp_path / "out", "--preset", "smoke", "--folds", "2"]
    for main in (segmenter.train.main, classifier.train.main):
        code, out, err = call_cli(main, [*base, *args])
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert all(w in lines[0] for w in words), lines[0]
    assert not (tmp_path / "out" / "segmenter").exists() and not (tmp_path / "out" / "classifier").exists()


@pytest.mark.parametrize("value", ["0", "2.5", "lst", "true"])
def test_bad_validate_every(synthetic_data, tmp_path, call_cli, value):
    """A ``validate_every`` that is neither a whole number of epochs nor "last": one line, exit 2, before any
    round is trained or run.json written."""
    import segmenter.train

    code, out, err = call_cli(segmenter.train.main, ["--data", synthetic_data, "--out", tmp_path / "out", "--preset",
                                                     "smoke", "--folds", "2", "--set", f"validate_every={value}"])
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "validate_every" in lines[0] and "last" in lines[0], lines[0]
    assert not (tmp_path / "out" / "segmenter").exists()


def test_refuses_other_data_and_other_settings(trained, tmp_path, call_cli):
    """Other settings (run in this process: refused before any model is built), then other data (a
    subprocess: the exit code and the one line as a user sees them)."""
    import segmenter.train

    data, out = trained
    run_json = (out / "segmenter" / "run.json").read_text()
    code, _, err = call_cli(segmenter.train.main, ["--data", data, "--out", out, "--preset", "smoke", "--folds", "2",
                                                   "--edge", "off"])
    assert_one_line_error(subprocess.CompletedProcess([], code, "", err), "run.json", "preset")
    # the same ids with other pixels: another data set, refused by its fingerprint
    other = tmp_path / "data"
    subprocess.run(["cp", "-r", str(data), str(other)], check=True)
    import cv2

    first = sorted((other / "train" / "images").glob("*.png"))[0]
    img = cv2.imread(str(first))
    cv2.imwrite(str(first), 255 - img)
    proc = python("segmenter.train", "--data", other, "--out", out, "--preset", "smoke", "--folds", "2")
    assert_one_line_error(proc, "other data or folds")
    assert (out / "segmenter" / "run.json").read_text() == run_json
