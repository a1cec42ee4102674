"""Training batches: images and their targets, augmented on the fly, for ``model.fit``."""
from __future__ import annotations

import math

import keras
import numpy as np

from salt.augment import augment_batch


def to_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N,101,101) -> float32 (N,101,101,1) in [0, 1], the input of both networks."""
    return (images.astype(np.float32) / 255.0)[..., None]


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled batches of ``(to_input(images), make_targets(masks))``.

    Image and mask go through the same random transform (``salt.augment``); the targets are made
    from the transformed masks, so every target (mask, edge, "is empty") stays consistent with the
    image. Deterministic for a given seed, epoch and batch, whatever the number of workers.
    """

    def __init__(self, images, masks, make_targets, batch_size: int, augment: dict | None = None,
                 seed: int = 0, shuffle: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.images, self.masks = images, masks
        self.make_targets = make_targets
        self.batch_size, self.augment = batch_size, augment
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.images))

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, i: int):
        idx = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        images, masks = self.images[idx], self.masks[idx]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            images, masks = augment_batch(images, masks, rng, **self.augment)
        return to_input(images), self.make_targets(masks)

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self._order()
