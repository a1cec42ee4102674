"""The training spine's stages: exact resume after a kill (augmentation and dropout on), the best
checkpoint, divergence, finished stages, and refusing mixed runs."""
from __future__ import annotations

import copy
import io
import json
import shutil
import zipfile

import h5py
import keras
import numpy as np
import pandas as pd
import pytest

from salt.augment import AUGMENT, augment_batch
from salt.cli import UserError
from training import devices, kfold, runs, stage
from training.batches import AugmentedBatches, to_input
from training.validation import Validation

EPOCHS = 4


@pytest.fixture(autouse=True, scope="module")
def deterministic_ops():
    """The backend's op determinism, so that two runs of the same batches give the same weights."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    yield


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:101, :101]
    masks = np.zeros((n, 101, 101), bool)
    for i in range(n // 3, n):
        cy, cx, r = rng.uniform(20, 80, 3)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < (r / 2) ** 2
    images = np.clip(80 + 90 * masks + rng.normal(0, 20, masks.shape), 0, 255).astype(np.uint8)
    return images, masks


def _targets(masks):
    return masks[..., None].astype(np.float32)


def _model():
    """A small segmentation network with batch normalisation and dropout, as the real ones have."""
    devices.new_session(7)
    inp = keras.Input((101, 101, 1))
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.3)(x)
    out = keras.layers.Conv2D(1, 1, name="mask")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  jit_compile=False)
    return model


def _score(masks):
    def score(probs):
        return {"val_score": -float(np.mean(np.abs(probs["mask"] - masks)))}
    return score


class _Kill(keras.callbacks.Callback):
    """Ends the process's work at the end of an epoch, before the checkpoint sees it (like SIGKILL)."""

    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise KeyboardInterrupt


def _fit(stage_dir, callbacks=(), save_every_s=0.0, epochs=EPOCHS, every=1):
    images, masks = _data()
    model = _model()
    data = AugmentedBatches(images[:16], masks[:16], _targets, batch_size=4, augment=AUGMENT, seed=3, workers=2)
    val = Validation(images[16:], _score(masks[16:]), batch_size=8, every=every, epochs=epochs, names=("val_score",))
    state = stage.fit_stage(model, stage_dir, data, epochs, "val_score", "max", [val, *callbacks], verbose=0,
                            save_every_s=save_every_s)
    return model, state


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted run of ``_fit`` (model, state, stage folder), shared by the tests that compare with
    it: they only read it."""
    stage_dir = tmp_path_factory.mktemp("straight") / "s"
    model, state = _fit(stage_dir)
    return model, state, stage_dir


@pytest.fixture(scope="module")
def killed_after_2(tmp_path_factory):
    """A run of ``_fit`` killed at the end of epoch 3 of 4, before its checkpoint; tests resume a copy of it."""
    stage_dir = tmp_path_factory.mktemp("killed") / "s"
    with pytest.raises(KeyboardInterrupt):
        _fit(stage_dir, [_Kill(after_epoch=2)])
    return stage_dir


def _assert_same_weights(a, b):
    assert len(a.get_weights()) == len(b.get_weights())
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_step_loop_trains_what_fit_trains():
    """``stage.train_epochs`` (one train_on_batch a step) against Keras' own ``fit`` over the same stream of
    batches from the same initial weights: the same weights after 3 epochs, and as each epoch's loss the
    mean of its steps' losses, which is what fit's loss metric holds for batches of one size."""
    images, masks = _data()
    runs_ = []
    for loop in (False, True):
        model = _model()
        data = AugmentedBatches(images[:16], masks[:16], _targets, batch_size=4, augment=AUGMENT, seed=3, workers=0)
        batch_losses = []

        class Steps(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                batch_losses.append(float(logs["loss"]))

        if loop:
            stage.train_epochs(model, data, 3, 0, [Steps()], verbose=0)
        else:
            model.fit(data, epochs=3, steps_per_epoch=len(data), callbacks=[Steps()], verbose=0, shuffle=False)
        runs_.append((model, model.history.history["loss"], batch_losses))
    (fit_model, fit_loss, fit_steps), (loop_model, loop_loss, loop_steps) = runs_
    _assert_same_weights(fit_model, loop_model)
    np.testing.assert_allclose(loop_loss, fit_loss, rtol=1e-5)
    # the running mean after each step, as fit reports it: the last of each epoch is the epoch's loss
    np.testing.assert_allclose(loop_steps, fit_steps, rtol=1e-5)
    assert len(loop_steps) == 3 * 4


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, straight, killed_after_2):
    """Killed at the end of epoch 3 of 4, before its checkpoint, and resumed: epoch 3 runs again with the
    same batches, augmentations and dropout masks, and the result is the same weights, optimizer steps,
    best value and log as one uninterrupted run."""
    straight, straight_state, straight_dir = straight
    shutil.copytree(killed_after_2, tmp_path / "killed")
    state = json.loads((tmp_path / "killed" / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["rng"]) == 1
    assert [p.name for p in (tmp_path / "killed").glob("last-*.weights.h5")] == ["last-2.weights.h5"]
    resumed, resumed_state = _fit(tmp_path / "killed")
    assert int(resumed.optimizer.iterations.numpy()) == int(straight.optimizer.iterations.numpy()) == 16
    _assert_same_weights(straight, resumed)
    assert resumed_state == straight_state
    log = pd.read_csv(tmp_path / "killed" / "log.csv")
    assert log["epoch"].tolist() == [0, 1, 2, 3]
    assert log["val_score"].to_numpy() == pytest.approx(pd.read_csv(straight_dir / "log.csv")["val_score"])
    assert not list((tmp_path / "killed").glob(".tmp-*")), "no temporary file is left behind"


def test_resume_without_generator_state_differs(tmp_path, straight, killed_after_2):
    """The dropout generators' state matters: resumed without it, the weights differ (so the test above
    can fail for that reason)."""
    straight = straight[0]
    shutil.copytree(killed_after_2, tmp_path / "killed")
    state_path = tmp_path / "killed" / "state.json"
    state = json.loads(state_path.read_text())
    state["rng"] = [[7, 0]]  # a fresh generator
    state_path.write_text(json.dumps(state))
    resumed, _ = _fit(tmp_path / "killed")
    assert any(not np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(straight.get_weights(), resumed.get_weights()))


def test_resume_state_is_written_about_once_a_minute(tmp_path, straight):
    """With the default interval a short stage writes its resume state at the end only; killed before
    that, it starts again and still logs every epoch once and ends with the same weights."""
    straight = straight[0]
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "killed", [_Kill(after_epoch=2)], save_every_s=stage.SAVE_EVERY_S)
    assert not (tmp_path / "killed" / "state.json").exists() and not (tmp_path / "killed" / "best.keras").exists()
    assert len(pd.read_csv(tmp_path / "killed" / "log.csv")) == 2, "the log has the epochs that ended"
    resumed, _ = _fit(tmp_path / "killed", save_every_s=stage.SAVE_EVERY_S)
    assert pd.read_csv(tmp_path / "killed" / "log.csv")["epoch"].tolist() == [0, 1, 2, 3]
    _assert_same_weights(straight, resumed)


def test_best_checkpoint_is_the_best_epoch_without_optimizer(straight):
    _, state, stage_dir = straight
    scores = pd.read_csv(stage_dir / "log.csv")["val_score"].tolist()
    assert state["best"] == pytest.approx(max(scores)) and state["best_epoch"] == int(np.argmax(scores))
    best = keras.saving.load_model(stage_dir / "best.keras", compile=False)
    images, masks = _data()
    prob = 1 / (1 + np.exp(-best.predict(images[16:, ..., None] / np.float32(255), verbose=0)[..., 0]))
    assert -float(np.mean(np.abs(prob - masks[16:]))) == pytest.approx(max(scores), rel=1e-4)
    with zipfile.ZipFile(stage_dir / "best.keras") as z:
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            names = []
            f.visit(names.append)
    assert not any("optimizer" in n for n in names), "best.keras holds no optimizer state"
    assert any("batch_normalization" in n for n in names)


def test_validating_every_few_epochs_keeps_the_best_of_those(tmp_path, straight):
    """every=3 over 4 epochs validates epochs 3 and 4 only (0-based 2 and 3): the others log NaN, training is
    unchanged (the validated scores equal an every-epoch run's), and the checkpoint is the better of the two."""
    every_epoch = pd.read_csv(straight[2] / "log.csv")["val_score"].to_numpy()
    _, state = _fit(tmp_path / "few", every=3)
    few = pd.read_csv(tmp_path / "few" / "log.csv")["val_score"].to_numpy()
    assert np.isnan(few[:2]).all() and np.isfinite(few[2:]).all()
    np.testing.assert_allclose(few[2:], every_epoch[2:], rtol=1e-5)
    assert state["best_epoch"] == 2 + int(np.argmax(few[2:])) and state["best"] == pytest.approx(few[2:].max())
    with pytest.raises(ValueError, match="epochs"):
        Validation(np.zeros((4, 101, 101), np.uint8), _score(None), batch_size=8, every=2)


@pytest.mark.parametrize("setting, validated", [(None, [0, 1, 2, 3, 4]), (3, [2, 4]), ("last", [4])])
def test_segmenter_preset_names_the_validated_epochs(setting, validated):
    """A segmenter preset's ``validate_every`` over a round of 5 epochs (0-based): absent, every epoch;
    3, the 3rd and the round's last; "last", the last alone."""
    from segmenter.presets import PRESETS
    from segmenter.train import fit_parts

    preset = copy.deepcopy(PRESETS["smoke"])
    preset.pop("validate_every", None)
    if setting is not None:
        preset["validate_every"] = setting
    images, masks = _data()
    _, callbacks = fit_parts(preset, {"loss": "bce_dice", "epochs": 5, "lr": 1e-3}, images, masks, images[:4],
                             masks[:4], seed=0)
    (val,) = [c for c in callbacks if isinstance(c, Validation)]
    assert [e for e in range(5) if val.due(e)] == validated


class _Poison(keras.callbacks.Callback):
    """Makes the network produce NaN from epoch 2 on."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            kernel = self.model.layers[1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_divergence_stops_the_stage_and_it_is_not_done(tmp_path):
    with pytest.raises(stage.Diverged, match="diverged at epoch 2"):
        _fit(tmp_path / "s", [_Poison()], epochs=3)
    assert not stage.is_done(tmp_path / "s")
    assert not (tmp_path / "s" / "state.json").exists() or json.loads(
        (tmp_path / "s" / "state.json").read_text())["epoch"] <= 1


def test_nan_prediction_is_divergence_even_with_a_finite_score():
    """A NaN network predicts no salt anywhere, which scores the share of empty images: still caught."""
    images, masks = _data()
    val = Validation(images, lambda probs: {"val_score": 0.4}, batch_size=8)
    model = _model()
    model.layers[1].kernel.assign(np.full(model.layers[1].kernel.shape, np.nan, "float32"))
    val.set_model(model)
    with pytest.raises(stage.Diverged, match="not finite"):
        val.on_epoch_end(0, {})


def test_finished_stage_is_not_touched(tmp_path):
    st = tmp_path / "s"
    _fit(st, epochs=2)
    stage.mark_done(st, {"best": 1})
    assert stage.is_done(st) and not list(st.glob("last-*"))
    before = {p.name: p.stat().st_mtime_ns for p in st.iterdir()}
    _fit(st, epochs=3)  # even with more epochs asked for, a finished stage is left as it is
    assert {p.name: p.stat().st_mtime_ns for p in st.iterdir()} == before


def test_resume_refuses_other_architecture(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "s", [_Kill(after_epoch=1)])
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    other.compile(optimizer="adam", loss="mse")
    with pytest.raises(UserError, match="another architecture"):
        stage.ResumableCheckpoint(tmp_path / "s", "val_score").restore(other)


def test_batches_are_a_function_of_seed_epoch_and_index():
    """Item k of the stream is batch k % steps of training epoch first + k // steps, drawn from
    (seed, epoch + 1): checked against the draws written out by hand, with and without worker threads."""
    images, masks = _data()
    a = AugmentedBatches(images, masks, _targets, batch_size=5, augment=AUGMENT, seed=1, workers=1)
    b = AugmentedBatches(images, masks, _targets, batch_size=5, augment=AUGMENT, seed=1, workers=0)
    assert len(a) == 4, "the partial last batch is dropped"
    assert a.num_batches is None, "endless, so that Keras keeps one iterator per fit"
    b.set_epoch(2)
    for i in range(len(a)):
        order = np.random.default_rng((1, 3)).permutation(len(images))
        idx = np.sort(order[i * 5:(i + 1) * 5])
        ref_images, ref_masks = augment_batch(images[idx], masks[idx], np.random.default_rng((1, 3, i)), **AUGMENT)
        for x, y in ((a[2 * len(a) + i], "stream from epoch 0"), (b[i], "stream from epoch 2")):
            np.testing.assert_array_equal(x[0], to_input(ref_images), err_msg=y)
            np.testing.assert_array_equal(x[1], _targets(ref_masks), err_msg=y)
    b.set_epoch(0)
    assert not np.array_equal(a[2 * len(a)][0], b[0][0])
    a.close()


def _run(tmp_path, name="smoke", config=None, fp="fp1"):
    return runs.Run(name, config or {"a": 1}, None, None, fp, tmp_path, 2, [0, 1], "float32", 0)


def test_run_folder_refuses_other_data_or_preset(tmp_path):
    _run(tmp_path).open()
    _run(tmp_path).open()  # the same run again is fine
    with pytest.raises(UserError, match="other data or folds"):
        _run(tmp_path, fp="fp2").open()
    with pytest.raises(UserError, match="preset"):
        _run(tmp_path, "cpu", {"a": 2}).open()
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["environment"]["devices"] and record["precision"] == "float32"


def test_fold_split_is_disjoint_and_covering():
    folds = pd.DataFrame({"fold": [0, 1, 2, 0, 1, 2, 0]})
    for f in range(3):
        tr, va = kfold.fold_split(folds, f)
        assert set(tr).isdisjoint(va) and sorted([*tr, *va]) == list(range(7))
        assert (folds["fold"].to_numpy()[va] == f).all()


def test_preset_settings_from_the_command_line():
    preset = {"network": {"edge": True, "encoder_args": {"width": 1.0}}, "batch_size": 32}
    runs.apply_setting(preset, "network.edge=false")
    runs.apply_setting(preset, "network.encoder_args.width=0.5")
    runs.apply_setting(preset, "snapshots=lovasz")
    runs.apply_setting(preset, 'rounds=[{"loss": "lovasz", "epochs": 2, "lr": 0.001}]')
    assert preset == {"network": {"edge": False, "encoder_args": {"width": 0.5}}, "batch_size": 32,
                      "snapshots": "lovasz", "rounds": [{"loss": "lovasz", "epochs": 2, "lr": 0.001}]}
    for bad in ("network.edge", "decoder.width=3", "=1"):
        with pytest.raises(UserError, match="--set"):
            runs.apply_setting(preset, bad)
