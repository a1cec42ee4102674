"""One training stage (a fold, a fold's round, a classifier stage) in a folder of its own: resumable,
checkpointed, logged, and never marked done when it diverged.

A stage folder holds:

- ``best.keras``: the best model so far by the monitored value (of the epochs that were validated),
  without optimizer state;
- ``last-EPOCH.weights.h5`` + ``state.json``: the resume point (weights, optimizer state, the dropout
  layers' random-generator states, the best value so far). Written about once a minute and at the end,
  not every epoch: on a GPU an epoch lasts seconds and writing a 400 MB checkpoint each time would
  dominate it; a kill loses at most a minute;
- ``log.csv``: Keras' CSVLogger, one row per epoch, with ``epoch_s`` (the epoch's wall time including
  validation); rows of epochs that a resumed run repeats are replaced, never doubled;
- ``done.json``: written last; a stage with it is skipped and its files are not touched again.

Every file is written to a temporary name and renamed. A resumed stage sees the same batches,
augmentations and dropout masks as an uninterrupted one (``AugmentedBatches.set_epoch``, the saved
generator states), so it ends with the same weights up to floating-point noise.
"""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from salt.cli import UserError
from salt.io import atomic_path, write_json
from salt.layout import StageFiles
from training import devices

SAVE_EVERY_S = 60.0


class Diverged(UserError):
    """Training produced a non-finite loss or prediction."""


def is_done(stage_dir: Path) -> bool:
    return StageFiles(stage_dir).done.exists()


def mark_done(stage_dir: Path, record: dict) -> None:
    """Marks a stage finished; its resume files are no longer needed."""
    write_json(StageFiles(stage_dir).done, record)
    for f in Path(stage_dir).glob(StageFiles.RESUME_GLOB):
        f.unlink()


def read_done(stage_dir: Path) -> dict:
    return json.loads(StageFiles(stage_dir).done.read_text())


def rng_variables(model) -> list:
    """The state variables of the model's random generators (dropout), which ``get_weights`` and
    ``save_weights`` leave out."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_s``, the epoch's wall time with validation and the callbacks before it, to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_s"] = time.perf_counter() - self._start


class ResumableCheckpoint(keras.callbacks.Callback):
    """Keeps ``best.keras`` by ``monitor`` and the resume state of a stage; stops on divergence.

    The best weights are held in memory when they improve and written with the resume state, every
    ``save_every_s`` seconds and at the last epoch, so the two files always agree.
    """

    def __init__(self, stage_dir: Path, monitor: str, mode: str = "max", epochs: int | None = None,
                 save_every_s: float = SAVE_EVERY_S):
        super().__init__()
        self.dir = Path(stage_dir)
        self.files = StageFiles(self.dir)
        self.monitor, self.mode, self.epochs, self.save_every_s = monitor, mode, epochs, save_every_s
        self.state = {"epoch": 0, "best": None, "best_epoch": None}
        if self.files.state.exists():
            self.state = json.loads(self.files.state.read_text())
        self._best_weights, self._saved_at, self._twin = None, time.monotonic(), None

    def restore(self, model: keras.Model) -> int:
        """Loads the last saved epoch's weights, optimizer and generator states; returns the epoch to start at."""
        if not self.state["epoch"]:
            return 0
        path = self.files.resume(self.state['epoch'])
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(path)
            rng = rng_variables(model)
            if len(rng) != len(self.state.get("rng", [])):
                raise ValueError(f"{len(self.state.get('rng', []))} saved random generators, model has {len(rng)}")
            for v, value in zip(rng, self.state["rng"]):
                v.assign(np.asarray(value, dtype=v.dtype))
        except (ValueError, OSError) as e:
            raise UserError(f"{path}: cannot resume from this checkpoint ({str(e).splitlines()[0][:120]}); "
                            f"it is from another architecture or broken: delete {self.dir}") from None
        print(f"resuming {self.dir} after epoch {self.state['epoch']} (best {self.monitor} "
              f"{self.state['best']:.4f} at epoch {self.state['best_epoch'] + 1})", flush=True)
        return int(self.state["epoch"])

    def _improved(self, value: float) -> bool:
        best = self.state["best"]
        return best is None or (value > best if self.mode == "max" else value < best)

    def on_epoch_end(self, epoch, logs=None):
        loss = float(logs.get("loss", 0.0))
        value = float(logs[self.monitor])  # NaN: not validated this epoch (``Validation(every=...)``)
        if not math.isfinite(loss) or math.isinf(value):
            raise Diverged(f"{self.dir}: training diverged at epoch {epoch + 1} (loss {loss}, {self.monitor} "
                           f"{value}); lower the learning rate or use float32 (--precision float32)")
        if not math.isnan(value) and self._improved(value):
            self._best_weights = self.model.get_weights()
            self.state.update(best=value, best_epoch=epoch)
        last = self.epochs is not None and epoch + 1 >= self.epochs
        if last or time.monotonic() - self._saved_at >= self.save_every_s:
            self.save(epoch + 1)

    def save(self, epoch: int) -> None:
        """Writes best.keras (if it changed), the resume weights of ``epoch`` and state.json, in that order."""
        if self._best_weights is not None:
            if self._twin is None:  # an uncompiled copy: best.keras without the optimizer's state
                self._twin = self.model.__class__.from_config(self.model.get_config())
            self._twin.set_weights(self._best_weights)
            with atomic_path(self.files.best) as tmp:
                self._twin.save(tmp)
            self._best_weights = None
        old, new = self.files.resume(self.state['epoch']), self.files.resume(epoch)
        with atomic_path(new) as tmp:
            self.model.save_weights(tmp)
        self.state["epoch"] = epoch
        self.state["rng"] = [np.asarray(keras.ops.convert_to_numpy(v.value)).tolist()
                             for v in rng_variables(self.model)]
        write_json(self.files.state, self.state)
        if old.exists() and old != new:
            old.unlink()
        self._saved_at = time.monotonic()


def _trim_log(path: Path, epochs: int) -> None:
    """Drops the rows of epochs >= ``epochs`` from a CSVLogger file (a resumed run logs them again)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs]
    if len(keep) != len(rows):
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows(keep)


def fit_stage(model: keras.Model, stage_dir: Path, train_data, epochs: int, monitor: str, mode: str,
              callbacks=(), verbose="auto", save_every_s: float = SAVE_EVERY_S, pace=None, **fit_kwargs) -> dict:
    """Runs one stage's epochs so that it resumes after a kill (``model.fit``, or on TensorFlow on a CPU
    ``train_epochs``: ``devices.step_loop()``); returns the checkpoint state.

    ``callbacks`` come first, so a callback that adds a validation value to the logs (the competition
    metric, say) is seen by the timer, the checkpoint and the CSV log. ``pace`` (``training.pace.Pace``)
    follows the timer and counts the run's epochs down. A diverged stage raises ``Diverged`` and is not
    marked done.
    """
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = ResumableCheckpoint(stage_dir, monitor, mode, epochs, save_every_s)
    if is_done(stage_dir):
        return checkpoint.state
    initial_epoch = checkpoint.restore(model)
    if hasattr(train_data, "set_epoch"):  # AugmentedBatches: an endless stream that starts at this epoch
        train_data.set_epoch(initial_epoch)
        fit_kwargs.setdefault("steps_per_epoch", len(train_data))
    _trim_log(StageFiles(stage_dir).log, initial_epoch)
    all_callbacks = [*callbacks, EpochTimer(), *([pace] if pace is not None else []), checkpoint,
                     keras.callbacks.CSVLogger(str(StageFiles(stage_dir).log), append=True)]
    if initial_epoch < epochs:
        try:
            if devices.step_loop() and hasattr(train_data, "set_epoch") and set(fit_kwargs) == {"steps_per_epoch"}:
                train_epochs(model, train_data, epochs, initial_epoch, all_callbacks, verbose)
            else:
                # shuffle=False: the batches shuffle themselves, by epoch; Keras would also reorder them with
                # Python's global random state, which a resumed process does not share.
                model.fit(train_data, epochs=epochs, initial_epoch=initial_epoch, callbacks=all_callbacks,
                          verbose=verbose, shuffle=False, **fit_kwargs)
        finally:
            if hasattr(train_data, "close"):  # the batches' worker threads
                train_data.close()
    if checkpoint.state["best"] is None or not np.isfinite(checkpoint.state["best"]):
        raise Diverged(f"{stage_dir}: training diverged (no finite {monitor}); see {StageFiles(stage_dir).log}")
    return checkpoint.state


def train_epochs(model: keras.Model, batches, epochs: int, initial_epoch: int, callbacks, verbose="auto") -> None:
    """Keras' ``fit`` loop over an endless stream of batches (``AugmentedBatches``, set to start at
    ``initial_epoch``), one ``train_on_batch`` per step: the same callbacks, progress bar and History, and
    as epoch logs the mean of the steps' logs (what ``fit``'s metrics hold for batches of one size).

    On TensorFlow on a CPU, ``fit`` pulls every batch through an in-graph tf.data iterator, and an epoch of
    the cpu preset took 1.87x the time of the same steps fed by ``train_on_batch`` (``bench/fit_loop.py``).
    The step itself is the same compiled ``train_step`` over the same batches: with TensorFlow's op
    determinism on, the weights are those ``fit`` reaches (``tests/test_stage.py``); without it the two
    graphs may round differently, as another seed would."""
    steps = len(batches)
    callbacks = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                             verbose=verbose, epochs=epochs, steps=steps, model=model)
    model.stop_training = False
    callbacks.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        callbacks.on_epoch_begin(epoch)
        sums = {}
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            x, y = batches[(epoch - initial_epoch) * steps + step]
            for name, value in model.train_on_batch(x, y, return_dict=True).items():
                sums[name] = sums.get(name, 0.0) + float(value)
            logs = {name: total / (step + 1) for name, total in sums.items()}
            callbacks.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        logs = dict(logs)
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    if isinstance(model.optimizer, keras.optimizers.Optimizer):
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs)


def copy_weights(src: Path, model: keras.Model) -> None:
    """Sets a model's weights from a saved ``.keras`` model of the same architecture."""
    try:
        saved = keras.saving.load_model(src, compile=False)
        model.set_weights(saved.get_weights())
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise UserError(f"{src}: checkpoint does not fit this model ({str(e).splitlines()[0][:120]}); "
                        "it is from another architecture") from None
