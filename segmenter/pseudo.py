"""Pseudo-labels: the test images whose fold-averaged prediction is confident, with that prediction as
their mask, added to each fold's training part for one more round (validation images stay untouched).

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


def pseudo_labels(run_dir: Path, test_dir: Path, models: list[Path], settings: dict, batch_size: int):
    """(images uint8, masks bool) of the confident test images, predicted by ``models`` (every fold)
    with flip TTA; made once and kept in RUN/pseudo.npz."""
    path = Path(run_dir) / "pseudo.npz"
    if path.exists():
        with np.load(path) as f:
            return f["images"], f["masks"]
    from training.predict import fold_average

    ids, images = load_images(test_dir)
    prob = fold_average(models, images, tta=True, batch_size=batch_size)["mask"]
    keep = confident(prob, settings["low"], settings["high"], settings["share"])
    masks = prob[keep] > 0.5
    save_npz(path, ids=np.array(ids)[keep], images=images[keep], masks=masks)
    print(f"pseudo-labels: {int(keep.sum())} of {len(ids)} test images from {test_dir} are confident "
          f"(at least {settings['share']:.0%} of pixels below {settings['low']} or above {settings['high']}, "
          f"not blank) -> {path}", flush=True)
    return images[keep], masks
