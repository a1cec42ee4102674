"""Pseudo-labels: the test images whose prediction is confident, with that prediction as their mask,
added to a fold's training part for one more round (validation images stay untouched).

Each fold labels the test images with its own model only. The mean of every fold's model would label
them better, but the other folds' models trained on this fold's validation images, and their labels
would carry that knowledge into this fold's training: the out-of-fold score would then no longer
predict the score on unseen images.

Confident, as the competition's 1st place chose them: at least ``share`` of the pixels have P(salt)
below ``low`` or above ``high``, and the mask is not blank.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from salt.data import load_images
from salt.io import save_npz


def confident(prob: np.ndarray, low: float = 0.2, high: float = 0.8, share: float = 0.9) -> np.ndarray:
    """bool (N,): which predictions (N,H,W) are confident and not blank."""
    sure = ((prob < low) | (prob > high)).reshape(len(prob), -1).mean(axis=1)
    return (sure >= share) & (prob > 0.5).reshape(len(prob), -1).any(axis=1)


def pseudo_labels(path: Path, test_dir: Path, model: Path, settings: dict, batch_size: int):
    """(images uint8, masks bool) of the confident test images, predicted by ``model`` (one fold's)
    with flip TTA; made once and kept in ``path`` (an npz)."""
    path = Path(path)
    if path.exists():
        with np.load(path) as f:
            return f["images"], f["masks"]
    from training.predict import fold_average

    ids, images = load_images(test_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    prob = fold_average([model], images, tta=True, batch_size=batch_size)["mask"]
    keep = confident(prob, settings["low"], settings["high"], settings["share"])
    masks = prob[keep] > 0.5
    save_npz(path, ids=np.array(ids)[keep], images=images[keep], masks=masks)
    print(f"pseudo-labels: {int(keep.sum())} of {len(ids)} test images from {test_dir} are confident "
          f"(at least {settings['share']:.0%} of pixels below {settings['low']} or above {settings['high']}, "
          f"not blank) -> {path}", flush=True)
    return images[keep], masks
