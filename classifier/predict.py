"""Classifier prediction: `python -m classifier.predict --out OUT --images FOLDER --name NAME`.

Averages P(empty) over every fold model, each with horizontal-flip test-time augmentation, and saves
it to OUT/classifier/pred-NAME.npz for the ensemble.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

import classifier.model  # noqa: F401  (registers the custom layer that the checkpoints use)
from salt import kfold
from salt.batches import to_input
from salt.cli import UserError, run_cli
from salt.data import load_images
from salt.io import save_npz


def predict_p_empty(model: keras.Model, images: np.ndarray, tta: bool = True, batch_size: int = 64) -> np.ndarray:
    """P(empty) (N,) for uint8 images (N,101,101)."""
    x = to_input(images)
    views = [x, x[:, :, ::-1]] if tta else [x]
    logits = [np.asarray(model.predict(v, batch_size=batch_size, verbose=0), np.float32)[:, 0] for v in views]
    return np.mean([1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))) for z in logits], axis=0)


def fold_models(run_dir: Path) -> list[Path]:
    if not (run_dir / "metrics.json").exists():
        raise UserError(f"{run_dir / 'metrics.json'}: no trained classifier here; run `make train-classifier` first")
    stage = json.loads((run_dir / "run.json").read_text())["config"]["stages"][-1]["name"]
    paths = sorted(run_dir.glob(f"fold*/{stage}/best.keras"))
    if not paths:
        raise UserError(f"{run_dir}: no fold checkpoints; run `make train-classifier` first")
    return paths


def predict_folder(run_dir: Path, images: np.ndarray, tta: bool = True, batch_size: int = 64) -> np.ndarray:
    """Fold-averaged P(empty)."""
    paths = fold_models(run_dir)
    total = 0.0
    for path in paths:
        total = total + predict_p_empty(keras.saving.load_model(path, compile=False), images, tta, batch_size)
        keras.utils.clear_session()
    return total / len(paths)


def main(argv=None) -> int:
    args = kfold.parse_predict_args("classifier", __doc__.splitlines()[0], argv)
    start = time.time()
    run_dir = args.out / "classifier"
    ids, images = load_images(args.images)
    p_empty = predict_folder(run_dir, images, not args.no_tta, args.batch_size)
    fp = json.loads((run_dir / "metrics.json").read_text())["fingerprint"]
    path = run_dir / f"pred-{args.name}.npz"
    save_npz(path, ids=np.array(ids), p_empty=p_empty.astype(np.float32), fingerprint=np.array(fp))
    print(f"classifier: {len(ids)} images from {args.images} -> {path} ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    run_cli(main)
