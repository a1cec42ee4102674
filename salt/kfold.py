"""The k-fold run machinery that both trainers share.

A training run lives in one folder (OUT/segmenter, OUT/classifier) and is made of stages (a fold, or a
fold's round, or a classifier stage), each in a folder of its own. A stage is:

- skipped when its ``done.json`` exists (its files are not touched again);
- resumable: after every epoch the weights and the optimizer state go to ``last-EPOCH.weights.h5`` and
  ``state.json`` names the newest one, both written to a temporary file and renamed, so a run killed at
  any moment continues from the last completed epoch;
- checkpointed: the best model so far by the monitored value goes to ``best.keras``, atomically;
- logged: ``log.csv`` (Keras' CSVLogger, appended on resume) and, where TensorFlow is installed, a
  TensorBoard folder ``tb/``.

``run.json`` beside the stages records what the run used (preset, fingerprint of data and folds,
versions, backend, encoder initialisation); a second run into the same folder with other data, other
folds or another preset is refused instead of silently mixing models.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from salt.cli import UserError
from salt.data import TrainSet, load_train
from salt.folds import load_or_make_folds, run_fingerprint
from salt.io import atomic_path, write_json


def has_gpu() -> bool:
    """Whether the active Keras backend sees a GPU."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return torch.cuda.is_available()
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # a broken accelerator stack means: no GPU
        return False
    return False


def resolve_preset(name: str, presets: dict):
    """Looks a preset up by name; ``auto`` means ``full`` on a GPU and ``cpu`` otherwise."""
    if name == "auto":
        name = "full" if has_gpu() else "cpu"
        print(f"preset auto -> {name} ({'GPU' if name == 'full' else 'no GPU'} visible to the "
              f"{keras.backend.backend()} backend)")
    if name not in presets:
        raise UserError(f"unknown preset {name!r}; choose one of auto, {', '.join(presets)}")
    return name, presets[name]


def environment() -> dict:
    """Versions and device, written next to every run's outputs."""
    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__}
    for module in ("tensorflow", "jax", "torch"):
        if module in sys.modules:
            versions[module] = getattr(sys.modules[module], "__version__", "?")
    return {"backend": keras.backend.backend(), "gpu": has_gpu(), "versions": versions,
            "dtype_policy": keras.config.dtype_policy().name}


def open_run(run_dir: Path, preset_name: str, preset: dict, fp: str, extra: dict | None = None) -> dict:
    """Creates or re-opens a run folder, refusing one made with other data, folds or preset."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "run.json"
    record = {"preset": preset_name, "config": preset, "fingerprint": fp, **(extra or {})}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("fingerprint") != fp:
            raise UserError(f"{path}: trained on other data or folds (fingerprint {old.get('fingerprint')}, "
                            f"now {fp}); use another OUT or `make clean`")
        if old.get("preset") != preset_name or old.get("config") != json.loads(json.dumps(preset)):
            raise UserError(f"{path}: trained with preset {old.get('preset')!r} and other settings; "
                            f"use another OUT or `make clean` to train with {preset_name!r}")
    write_json(path, {**record, "environment": environment()})
    return record


def is_done(stage_dir: Path) -> bool:
    return (stage_dir / "done.json").exists()


def mark_done(stage_dir: Path, record: dict) -> None:
    """Marks a stage finished; its resume files are no longer needed."""
    write_json(stage_dir / "done.json", record)
    for f in stage_dir.glob("last-*.weights.h5"):
        f.unlink()


def read_done(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "done.json").read_text())


class ResumableCheckpoint(keras.callbacks.Callback):
    """Keeps ``best.keras`` by ``monitor`` and the resume state of a stage; every file atomically."""

    def __init__(self, stage_dir: Path, monitor: str, mode: str = "max"):
        super().__init__()
        self.dir = Path(stage_dir)
        self.monitor, self.mode = monitor, mode
        self.state = {"epoch": 0, "best": None, "best_epoch": None}
        if (self.dir / "state.json").exists():
            self.state = json.loads((self.dir / "state.json").read_text())

    def restore(self, model: keras.Model) -> int:
        """Loads the last completed epoch's weights and optimizer state; returns the epoch to start at."""
        if not self.state["epoch"]:
            return 0
        path = self.dir / f"last-{self.state['epoch']}.weights.h5"
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(path)
        except (ValueError, OSError) as e:
            raise UserError(f"{path}: cannot resume from this checkpoint ({str(e).splitlines()[0][:120]}); "
                            f"it is from another architecture or broken: delete {self.dir}") from None
        print(f"resuming {self.dir} after epoch {self.state['epoch']} (best {self.monitor} "
              f"{self.state['best']:.4f} at epoch {self.state['best_epoch'] + 1})")
        return int(self.state["epoch"])

    def _improved(self, value: float) -> bool:
        best = self.state["best"]
        return best is None or (value > best if self.mode == "max" else value < best)

    def on_epoch_end(self, epoch, logs=None):
        value = float(logs[self.monitor])
        if self._improved(value):
            with atomic_path(self.dir / "best.keras") as tmp:
                self.model.save(tmp)
            self.state.update(best=value, best_epoch=epoch)
        old = self.dir / f"last-{self.state['epoch']}.weights.h5"
        with atomic_path(self.dir / f"last-{epoch + 1}.weights.h5") as tmp:
            self.model.save_weights(tmp)
        self.state["epoch"] = epoch + 1
        write_json(self.dir / "state.json", self.state)
        if old.exists():
            old.unlink()


def fit_stage(model: keras.Model, stage_dir: Path, train_data, epochs: int, monitor: str, mode: str,
              callbacks=(), verbose="auto", **fit_kwargs) -> dict:
    """Runs ``model.fit`` for one stage so that it resumes after a kill; returns the checkpoint state.

    ``callbacks`` come first, so a callback that adds a validation value to the logs (the competition
    metric, say) is seen by the checkpoint and the CSV log.
    """
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = ResumableCheckpoint(stage_dir, monitor, mode)
    if is_done(stage_dir):
        return checkpoint.state
    initial_epoch = checkpoint.restore(model)
    all_callbacks = [*callbacks, checkpoint,
                     keras.callbacks.CSVLogger(str(stage_dir / "log.csv"), append=True),
                     keras.callbacks.TerminateOnNaN()]
    if keras.backend.backend() == "tensorflow" and importlib.util.find_spec("tensorboard"):
        all_callbacks.append(keras.callbacks.TensorBoard(str(stage_dir / "tb"), write_graph=False))
    if initial_epoch < epochs:
        model.fit(train_data, epochs=epochs, initial_epoch=initial_epoch, callbacks=all_callbacks,
                  verbose=verbose, **fit_kwargs)
    if checkpoint.state["best"] is None or not np.isfinite(checkpoint.state["best"]):
        raise UserError(f"{stage_dir}: training diverged (no finite {monitor}); see {stage_dir / 'log.csv'}")
    return checkpoint.state


def copy_weights(src: Path, model: keras.Model) -> None:
    """Sets a model's weights from a saved ``.keras`` model of the same architecture."""
    try:
        saved = keras.saving.load_model(src, compile=False)
        model.set_weights(saved.get_weights())
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise UserError(f"{src}: checkpoint does not fit this model ({str(e).splitlines()[0][:120]}); "
                        "it is from another architecture") from None


def fold_split(folds, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the training set's order) of a fold's training and validation images."""
    values = folds["fold"].to_numpy()
    return np.flatnonzero(values != fold), np.flatnonzero(values == fold)


def new_session(seed: int, mixed_precision: bool) -> None:
    """A clean Keras session for the next model: fixed seed, and bfloat16 mixed precision where the
    preset asks for it and a GPU is there (``clear_session`` resets the dtype policy to float32)."""
    keras.utils.clear_session()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed_precision and has_gpu() else "float32")
    keras.utils.set_random_seed(seed)


def jit_compile():
    """Keras' ``jit_compile`` for this machine: XLA everywhere but TensorFlow on a CPU, where compiling
    these networks takes minutes and the steps run slower than TensorFlow's own graphs."""
    if keras.backend.backend() == "tensorflow" and not has_gpu():
        return False
    return "auto"


def configure_threads() -> None:
    """Uses every core for TensorFlow's ops (the default may pick fewer inside containers)."""
    n = os.cpu_count() or 1
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, n))
        except RuntimeError:  # already initialised
            pass


def add_run_args(parser, presets: dict) -> None:
    """The command-line options that both trainers share."""
    parser.add_argument("--data", type=Path, default=Path("data/tgs"), help="Kaggle-layout data folder")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder")
    parser.add_argument("--preset", default="auto", help="auto, " + ", ".join(presets))
    parser.add_argument("--folds", type=int, default=5, help="number of folds K (>= 2)")
    parser.add_argument("--only-fold", type=int, action="append",
                        help="train only this fold (repeatable); metrics.json follows once all are done")
    parser.add_argument("--encoder-weights", help="imagenet, none or a weights file (default: the preset's)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every stage's epochs")
    parser.add_argument("--verbose", default="auto", help="Keras' fit verbosity: auto, 0, 1 or 2")


@dataclass
class Run:
    """What a trainer works with: the preset, the data, the folds and the run folder."""
    name: str
    preset: dict
    train: TrainSet
    folds: "pd.DataFrame"
    fingerprint: str
    dir: Path
    k: int
    fold_list: list
    verbose: object
    start: float = field(default_factory=time.time)

    def write_metrics(self, metrics: dict, encoder_init: str) -> dict:
        """metrics.json, with what the run used; a re-run that found all done keeps the first wall time."""
        path = self.dir / "metrics.json"
        wall = time.time() - self.start
        if path.exists():
            wall = json.loads(path.read_text()).get("wall_s", wall)
        record = {**metrics, "preset": self.name, "encoder_init": encoder_init, "fingerprint": self.fingerprint,
                  "folds_k": self.k, "wall_s": wall, "environment": environment()}
        write_json(path, record)
        return record


def start_run(args, presets: dict, subdir: str, epochs_key: str) -> Run:
    """Checks the shared options, picks the preset, loads data and folds, sets the dtype policy."""
    if args.folds < 2:
        raise UserError(f"--folds {args.folds}: need at least 2 folds")
    for fold in args.only_fold or []:
        if not 0 <= fold < args.folds:
            raise UserError(f"--only-fold {fold}: out of range for {args.folds} folds (0..{args.folds - 1})")
    if args.epochs_scale <= 0:
        raise UserError(f"--epochs-scale {args.epochs_scale}: must be positive")
    if args.verbose not in ("auto", "0", "1", "2"):
        raise UserError(f"--verbose {args.verbose}: choose auto, 0, 1 or 2")
    name, preset = resolve_preset(args.preset, presets)
    preset = copy.deepcopy(preset)
    if args.encoder_weights:
        preset["encoder_weights"] = args.encoder_weights
    for stage in preset[epochs_key]:
        stage["epochs"] = max(1, round(stage["epochs"] * args.epochs_scale))
    configure_threads()
    train = load_train(args.data, cache_dir=args.out / "cache")
    folds = load_or_make_folds(args.out, train.ids, train.masks, k=args.folds)
    return Run(name, preset, train, folds, run_fingerprint(train, args.out / "folds.csv"), args.out / subdir,
               args.folds, list(args.only_fold or range(args.folds)),
               args.verbose if args.verbose == "auto" else int(args.verbose))


def parse_predict_args(model: str, description: str, argv):
    """The options that both models' ``predict`` commands share."""
    p = argparse.ArgumentParser(prog=f"python -m {model}.predict", description=description)
    p.add_argument("--out", type=Path, default=Path("out"), help="the folder the model was trained into")
    p.add_argument("--images", type=Path, required=True, help="folder of 101x101 PNG images")
    p.add_argument("--name", default="test", help=f"predictions go to OUT/{model}/pred-NAME.npz")
    p.add_argument("--no-tta", action="store_true", help="no horizontal-flip test-time augmentation")
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args(argv)
