"""Training batches: images and their targets, augmented on the fly, for ``model.fit``."""
from __future__ import annotations

import os

import keras
import numpy as np

from salt.augment import augment_batch


def to_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N,101,101) -> float32 (N,101,101,1) in [0, 1], the input of both networks."""
    return (images.astype(np.float32) / 255.0)[..., None]


def default_workers() -> int:
    """Threads that prepare batches while the device computes (OpenCV releases the GIL)."""
    return max(1, min(8, (os.cpu_count() or 1) // 2))


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled batches of ``(to_input(images), make_targets(masks))``, all of one size.

    Image and mask go through the same random transform (``salt.augment``); the targets are made from the
    transformed masks, so every target (mask, edge, "is empty") stays consistent with the image.

    Batch i of epoch e is a pure function of (seed, e, i): the order is drawn from (seed, e) and the
    augmentation from (seed, e, i), whatever the number of workers. ``set_epoch`` puts a resumed run on
    the epoch it continues, so that it sees the batches an uninterrupted run would have seen. The last,
    partial batch of an epoch is dropped (its images come first in another epoch's order): one batch
    shape means one compiled step.
    """

    def __init__(self, images, masks, make_targets, batch_size: int, augment: dict | None = None,
                 seed: int = 0, shuffle: bool = True, workers: int | None = None, **kwargs):
        workers = default_workers() if workers is None else workers
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max(10, 2 * workers),
                         **kwargs)
        if len(images) < batch_size:
            raise ValueError(f"{len(images)} training images cannot fill one batch of {batch_size}")
        self.images, self.masks = images, masks
        self.make_targets = make_targets
        self.batch_size, self.augment = batch_size, augment
        self.seed, self.shuffle = seed, shuffle
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.shuffle:
            self.order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.images))
        else:
            self.order = np.arange(len(self.images))

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __getitem__(self, i: int):
        idx = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        images, masks = self.images[idx], self.masks[idx]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            images, masks = augment_batch(images, masks, rng, **self.augment)
        return to_input(images), self.make_targets(masks)

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)
