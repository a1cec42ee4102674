"""Training batches: images and their targets, augmented on the fly, for ``model.fit``."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from salt.augment import augment_batch
from training import devices


def to_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N,101,101) -> float32 (N,101,101,1) in [0, 1], the input of both networks."""
    return (images.astype(np.float32) / 255.0)[..., None]


def default_workers() -> int:
    """Threads that prepare batches while the device computes (OpenCV releases the GIL)."""
    return max(1, min(8, devices.cores() // 2))


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled batches of ``(to_input(images), make_targets(masks))``, all of one size, as one endless stream.

    Image and mask go through the same random transform (``salt.augment``); the targets are made from the
    transformed masks, so every target (mask, edge, "is empty") stays consistent with the image.

    Item i of the stream is batch ``i % len(self)`` of training epoch ``first + i // len(self)``, where
    ``set_epoch(first)`` names the epoch a ``fit`` starts at (a resumed run's ``initial_epoch``). Batch j of
    training epoch e is a pure function of (seed, e + 1, j): the order is drawn from (seed, e + 1) and the
    augmentation from (seed, e + 1, j), whatever the number of workers, so a resumed run sees the batches an
    uninterrupted one would have seen. (The draws are numbered from 1 because the finite form of this class
    numbered them so, and the measured runs' models stay reproducible.) The last, partial batch of an epoch
    is dropped (its images come first in another epoch's order): one batch shape means one compiled step.

    Endless (``num_batches`` is None) because ``fit`` is then given ``steps_per_epoch`` (``fit_stage``
    does that) and Keras keeps one data iterator for the whole ``fit``. Given a finite dataset it builds a
    new tf.data iterator every epoch, and on TensorFlow freeing the old one blocked the start of about one
    epoch in five of the cpu preset for some 35 s with every thread idle (py-spy: the main thread in
    ``IteratorResource::~IteratorResource``, waiting for the iterator's thread to finish).

    ``workers`` threads prepare the next batches while the device computes (OpenCV and the backends
    release the GIL). They are this class's own, not Keras' enqueuer, whose tf.data iterator stalled the
    same way; Keras sees a plain dataset and prefetches it as it does any other.
    """

    def __init__(self, images, masks, make_targets, batch_size: int, augment: dict | None = None,
                 seed: int = 0, shuffle: bool = True, workers: int | None = None, **kwargs):
        super().__init__(workers=0, **kwargs)
        if len(images) < batch_size:
            raise ValueError(f"{len(images)} training images cannot fill one batch of {batch_size}")
        self.images, self.masks = images, masks
        self.make_targets = make_targets
        self.batch_size, self.augment = batch_size, augment
        self.seed, self.shuffle = seed, shuffle
        self.n_workers = default_workers() if workers is None else workers
        self.ahead = max(2, 2 * self.n_workers)  # batches prepared ahead of the one asked for
        self._pool, self._pending = None, {}
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """The training epoch that item 0 of the stream belongs to."""
        self.epoch = int(epoch)
        for future in self._pending.values():  # prepared for another start: not wanted any more
            future.cancel()
        self._pending = {}

    def __len__(self) -> int:
        """Batches in one epoch (the ``steps_per_epoch`` of ``fit``)."""
        return len(self.images) // self.batch_size

    @property
    def num_batches(self):
        return None  # endless: see the class's docstring

    def batch(self, draw: int, i: int):
        """Batch i of the epoch whose draws are numbered ``draw`` (training epoch ``draw - 1``), computed
        from scratch, so that worker threads share no state."""
        n = len(self.images)
        order = np.random.default_rng((self.seed, draw)).permutation(n) if self.shuffle else np.arange(n)
        idx = np.sort(order[i * self.batch_size:(i + 1) * self.batch_size])
        images, masks = self.images[idx], self.masks[idx]
        if self.augment:
            rng = np.random.default_rng((self.seed, draw, i))
            images, masks = augment_batch(images, masks, rng, **self.augment)
        return to_input(images), self.make_targets(masks)

    def _item(self, first: int, k: int):
        steps = len(self)
        return self.batch(first + 1 + k // steps, k % steps)

    def __getitem__(self, k: int):
        if self.n_workers == 0:
            return self._item(self.epoch, k)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.n_workers, thread_name_prefix="batches")
        for j in range(k, k + 1 + self.ahead):
            if j not in self._pending:
                self._pending[j] = self._pool.submit(self._item, self.epoch, j)
        return self._pending.pop(k).result()

    def close(self) -> None:
        """Stops the worker threads (the next batch asked for starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, {}
