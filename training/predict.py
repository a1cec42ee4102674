"""Prediction that both models share: sigmoid of every output, horizontal-flip test-time augmentation,
the average over fold models, and the options of both ``predict`` commands.

Images are padded to whole batches, so that prediction compiles one batch shape (JAX) however many
images there are; the padding is dropped from the results.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np

from salt.data import load_images
from salt.io import save_npz
from training.batches import to_input


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def _outputs(model: keras.Model, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    n = len(x)
    pad = -n % batch_size
    if pad:
        x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    out = model.predict(x, batch_size=batch_size, verbose=0)
    if not isinstance(out, dict):
        out = {model.output_names[0]: out}
    return {k: np.asarray(v, np.float32)[:n] for k, v in out.items()}


def predict_outputs(model: keras.Model, images: np.ndarray, tta: bool = True, batch_size: int = 64) -> dict:
    """Probabilities of every output of ``model`` for uint8 images (N,101,101): image outputs (N,H,W),
    one value per image (N,). With ``tta`` the mirrored image is predicted too, its image outputs are
    mirrored back, and the two are averaged."""
    x = to_input(images)
    views = [x, x[:, :, ::-1]] if tta else [x]
    total: dict[str, np.ndarray] = {}
    for i, view in enumerate(views):
        for name, z in _outputs(model, view, batch_size).items():
            p = sigmoid(z[..., 0])
            if i == 1 and p.ndim == 3:
                p = p[:, :, ::-1]
            total[name] = total.get(name, 0.0) + p
    return {k: v / len(views) for k, v in total.items()}


class Models:
    """Saved models one after another in one Keras model: each next ``.keras`` file of the same
    architecture only loads its weights into the model built first, whose traced prediction step then
    serves every file (on TensorFlow's CPU path a new model traces it again: seconds per fold)."""

    def __init__(self):
        self.model = None

    def load(self, path: Path) -> keras.Model:
        if self.model is not None:
            try:
                self.model.load_weights(path)
                return self.model
            except ValueError:  # another architecture: a model of its own
                pass
        keras.utils.clear_session()
        self.model = keras.saving.load_model(path, compile=False)
        return self.model


def fold_average(paths: list[Path], images: np.ndarray, tta: bool = True, batch_size: int = 64,
                 models: Models | None = None) -> dict:
    """``predict_outputs`` averaged over the saved models ``paths`` (one per fold), loaded by ``models``."""
    models = models or Models()
    total: dict[str, np.ndarray] = {}
    for path in paths:
        for name, p in predict_outputs(models.load(path), images, tta, batch_size).items():
            total[name] = total.get(name, 0.0) + p
    return {k: v / len(paths) for k, v in total.items()}


def parse_predict_args(model: str, description: str, argv):
    """The options that both models' ``predict`` commands share."""
    p = argparse.ArgumentParser(prog=f"python -m {model}.predict", description=description)
    p.add_argument("--out", type=Path, default=Path("out"), help="the folder the model was trained into")
    p.add_argument("--images", type=Path, required=True, help="folder of 101x101 PNG images")
    p.add_argument("--name", default="test", help=f"predictions go to OUT/{model}/pred-NAME.npz")
    p.add_argument("--no-tta", action="store_true", help="no horizontal-flip test-time augmentation")
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args(argv)


def predict_command(model: str, description: str, argv, checkpoints, arrays) -> int:
    """The body of ``python -m MODEL.predict``: the fold models that ``checkpoints(run_dir)`` names
    ({fold: [saved models]}) predict the folder of images. OUT/MODEL/pred-NAME.npz gets, beside the ids
    and the fingerprint of the data the models were trained on, ``arrays(probabilities)`` of the mean over
    every fold and, for each fold k, the same arrays of that fold's models alone with the suffix
    ``_fold{k}`` (the ensemble can treat each fold's prediction as it treats an out-of-fold one), and
    ``wall_s``, the seconds this prediction took (the report's time table)."""
    args = parse_predict_args(model, description, argv)
    start = time.time()
    run_dir = args.out / model
    by_fold = checkpoints(run_dir)
    ids, images = load_images(args.images)
    models = Models()
    per_fold = {k: fold_average(paths, images, not args.no_tta, args.batch_size, models)
                for k, paths in by_fold.items()}
    mean = {name: np.mean([p[name] for p in per_fold.values()], axis=0) for name in next(iter(per_fold.values()))}
    out = dict(arrays(mean))
    for k, probs in per_fold.items():
        out.update({f"{name}_fold{k}": v for name, v in arrays(probs).items()})
    fingerprint = json.loads((run_dir / "metrics.json").read_text())["fingerprint"]
    path = run_dir / f"pred-{args.name}.npz"
    wall = time.time() - start
    save_npz(path, ids=np.array(ids), fingerprint=np.array(fingerprint), folds=np.array(sorted(per_fold)),
             wall_s=np.array(wall), **out)
    n_models = sum(len(p) for p in by_fold.values())
    print(f"{model}: {len(ids)} images from {args.images}, {len(by_fold)} folds ({n_models} models) -> {path} "
          f"({wall:.0f} s)")
    return 0
