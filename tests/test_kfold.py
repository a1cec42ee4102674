"""The shared k-fold run machinery: resume after a kill, skip finished stages, refuse mixed runs."""
from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from salt import kfold
from salt.cli import UserError


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-2, 40)), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5, 3.0], "float32"))[:, None]


class _Score(keras.callbacks.Callback):
    """Puts a deterministic validation value into the logs, like the trainers' metric callbacks."""

    def on_epoch_end(self, epoch, logs=None):
        x, y = _data()
        logs["val_score"] = -float(np.mean((self.model.predict(x, verbose=0) - y) ** 2))


class _Kill(keras.callbacks.Callback):
    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise KeyboardInterrupt


def _fit(stage, epochs, callbacks=()):
    model = _model()
    x, y = _data()
    state = kfold.fit_stage(model, stage, x, epochs, "val_score", "max", [_Score(), *callbacks], y=y,
                            verbose=0, batch_size=8, shuffle=False)
    return model, state


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    """Killed at the end of epoch 2 of 4, before its checkpoint, and resumed: epoch 2 runs again and
    the result is the same weights, optimizer steps, best value and log as one uninterrupted run."""
    straight, straight_state = _fit(tmp_path / "straight", 4)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "killed", 4, [_Kill(after_epoch=1)])
    state = json.loads((tmp_path / "killed" / "state.json").read_text())
    assert state["epoch"] == 1
    assert [p.name for p in (tmp_path / "killed").glob("last-*.weights.h5")] == ["last-1.weights.h5"]
    resumed, resumed_state = _fit(tmp_path / "killed", 4)
    assert int(resumed.optimizer.iterations.numpy()) == int(straight.optimizer.iterations.numpy()) == 16
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert resumed_state == straight_state
    log = (tmp_path / "killed" / "log.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["0", "1", "2", "3"]
    assert not list((tmp_path / "killed").glob(".tmp-*")), "no temporary file is left behind"


def test_best_checkpoint_is_the_best_epoch(tmp_path):
    model, state = _fit(tmp_path / "s", 3)
    scores = pd.read_csv(tmp_path / "s" / "log.csv")["val_score"].tolist()
    assert len(scores) == 3
    assert state["best"] == pytest.approx(max(scores)) and state["best_epoch"] == int(np.argmax(scores))
    best = keras.saving.load_model(tmp_path / "s" / "best.keras", compile=False)
    x, y = _data()
    assert -float(np.mean((best.predict(x, verbose=0) - y) ** 2)) == pytest.approx(max(scores), rel=1e-5)


def test_finished_stage_is_not_touched(tmp_path):
    stage = tmp_path / "s"
    _fit(stage, 2)
    kfold.mark_done(stage, {"best": 1})
    assert kfold.is_done(stage) and not list(stage.glob("last-*"))
    before = {p.name: p.stat().st_mtime_ns for p in stage.iterdir()}
    _fit(stage, 3)  # even with more epochs asked for, a finished stage is left as it is
    assert {p.name: p.stat().st_mtime_ns for p in stage.iterdir()} == before


def test_resume_refuses_other_architecture(tmp_path):
    _fit(tmp_path / "s", 1)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    other.compile(optimizer="adam", loss="mse")
    with pytest.raises(UserError, match="another architecture"):
        kfold.ResumableCheckpoint(tmp_path / "s", "val_score").restore(other)


def test_open_run_refuses_other_data_or_preset(tmp_path):
    kfold.open_run(tmp_path, "smoke", {"a": 1}, "fp1")
    kfold.open_run(tmp_path, "smoke", {"a": 1}, "fp1")  # the same run again is fine
    with pytest.raises(UserError, match="other data or folds"):
        kfold.open_run(tmp_path, "smoke", {"a": 1}, "fp2")
    with pytest.raises(UserError, match="preset"):
        kfold.open_run(tmp_path, "cpu", {"a": 2}, "fp1")


def test_fold_split_is_disjoint_and_covering():
    folds = pd.DataFrame({"fold": [0, 1, 2, 0, 1, 2, 0]})
    for f in range(3):
        tr, va = kfold.fold_split(folds, f)
        assert set(tr).isdisjoint(va) and sorted([*tr, *va]) == list(range(7))
        assert (folds["fold"].to_numpy()[va] == f).all()
