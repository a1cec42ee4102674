"""Segmenter prediction: `python -m segmenter.predict --out OUT --images FOLDER --name NAME`.

Averages the sigmoid probabilities of every fold model of the last round, each with horizontal-flip
test-time augmentation, and saves them as float16 to OUT/segmenter/pred-NAME.npz for the ensemble.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

import segmenter.unet  # noqa: F401  (registers the custom layers that the checkpoints use)
from salt import kfold
from salt.batches import to_input
from salt.cli import UserError, run_cli
from salt.data import load_images
from salt.io import save_npz


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def predict_probs(model: keras.Model, images: np.ndarray, tta: bool = True, batch_size: int = 64):
    """P(salt) per pixel (N,101,101) and the image head's P(has salt) (N,) for uint8 images."""
    x = to_input(images)
    views = [x, x[:, :, ::-1]] if tta else [x]
    mask, salt = 0.0, 0.0
    for i, view in enumerate(views):
        out = model.predict(view, batch_size=batch_size, verbose=0)
        m = sigmoid(np.asarray(out["mask"], np.float32)[..., 0])
        mask = mask + (m[:, :, ::-1] if i == 1 else m)
        salt = salt + sigmoid(np.asarray(out["salt"], np.float32)[:, 0])
    return mask / len(views), salt / len(views)


def last_round_models(run_dir: Path) -> list[Path]:
    """The best checkpoint of every fold of the last finished round."""
    run = run_dir / "run.json"
    metrics = run_dir / "metrics.json"
    if not metrics.exists():
        raise UserError(f"{metrics}: no trained segmenter here; run `make train-segmenter` first")
    rounds = len(json.loads(run.read_text())["config"]["rounds"])
    paths = sorted((run_dir / f"round{rounds}").glob("fold*/best.keras"))
    if not paths:
        raise UserError(f"{run_dir / f'round{rounds}'}: no fold checkpoints; run `make train-segmenter` first")
    return paths


def predict_folder(run_dir: Path, images: np.ndarray, tta: bool = True, batch_size: int = 64):
    """Fold-averaged probabilities of the last round's models."""
    mask, salt = 0.0, 0.0
    paths = last_round_models(run_dir)
    for path in paths:
        model = keras.saving.load_model(path, compile=False)
        m, s = predict_probs(model, images, tta, batch_size)
        mask, salt = mask + m, salt + s
        keras.utils.clear_session()
    return mask / len(paths), salt / len(paths)


def main(argv=None) -> int:
    args = kfold.parse_predict_args("segmenter", __doc__.splitlines()[0], argv)
    start = time.time()
    run_dir = args.out / "segmenter"
    ids, images = load_images(args.images)
    mask, salt = predict_folder(run_dir, images, not args.no_tta, args.batch_size)
    fp = json.loads((run_dir / "metrics.json").read_text())["fingerprint"]
    path = run_dir / f"pred-{args.name}.npz"
    save_npz(path, ids=np.array(ids), prob=mask.astype(np.float16), p_salt=salt.astype(np.float16),
             fingerprint=np.array(fp))
    print(f"segmenter: {len(ids)} images from {args.images} -> {path} ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    run_cli(main)
