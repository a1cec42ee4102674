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
    """Shuffled batches of ``(to_input(images), make_targets(masks))``, all of one size.

    Image and mask go through the same random transform (``salt.augment``); the targets are made from the
    transformed masks, so every target (mask, edge, "is empty") stays consistent with the image.

    Batch i of epoch e is a pure function of (seed, e, i): the order is drawn from (seed, e) and the
    augmentation from (seed, e, i), whatever the number of workers. ``set_epoch`` puts a resumed run on
    the epoch it continues, so that it sees the batches an uninterrupted run would have seen. The last,
    partial batch of an epoch is dropped (its images come first in another epoch's order): one batch
    shape means one compiled step.

    ``workers`` threads prepare the next batches while the device computes (OpenCV and the backends
    release the GIL). They are this class's own, not Keras' enqueuer: on TensorFlow, freeing the tf.data
    iterator that Keras builds over its enqueuer blocked the start of about a third of the cpu preset's
    epochs for some 35 s with every thread idle (py-spy: ``IteratorResource::~IteratorResource`` waiting
    for the iterator's thread). Keras sees a plain finite dataset and prefetches it as it does any other.
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
        self.epoch = int(epoch)
        for future in self._pending.values():  # prepared for another epoch: not wanted any more
            future.cancel()
        self._pending = {}

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def batch(self, epoch: int, i: int):
        """Batch i of ``epoch``, computed from scratch (a worker thread may still be computing one of the
        previous epoch when ``set_epoch`` moves on, so nothing here reads the current epoch)."""
        n = len(self.images)
        order = np.random.default_rng((self.seed, epoch)).permutation(n) if self.shuffle else np.arange(n)
        idx = np.sort(order[i * self.batch_size:(i + 1) * self.batch_size])
        images, masks = self.images[idx], self.masks[idx]
        if self.augment:
            rng = np.random.default_rng((self.seed, epoch, i))
            images, masks = augment_batch(images, masks, rng, **self.augment)
        return to_input(images), self.make_targets(masks)

    def __getitem__(self, i: int):
        if self.n_workers == 0:
            return self.batch(self.epoch, i)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.n_workers, thread_name_prefix="batches")
        for j in range(i, min(i + 1 + self.ahead, len(self))):
            if j not in self._pending:
                self._pending[j] = self._pool.submit(self.batch, self.epoch, j)
        return self._pending.pop(i).result()

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def close(self) -> None:
        """Stops the worker threads (the next batch asked for starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, {}
