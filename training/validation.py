"""Validation once per epoch, by the model's own measure, on the fold's held-out images."""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from training.predict import predict_outputs
from training.stage import Diverged


class Validation(keras.callbacks.Callback):
    """Predicts the validation images at the end of every epoch (whole batches, no test-time
    augmentation) and adds ``score(probabilities)`` to the epoch's logs, e.g. ``{"val_score": ...}``.

    A prediction that is not finite stops the stage as diverged: a NaN network would otherwise predict
    all-empty masks and score the share of empty images.
    """

    def __init__(self, images: np.ndarray, score: Callable[[dict], dict], batch_size: int, echo: str = ""):
        super().__init__()
        self.images, self.score, self.batch_size, self.echo = images, score, batch_size, echo

    def on_epoch_end(self, epoch, logs=None):
        probs = predict_outputs(self.model, self.images, tta=False, batch_size=self.batch_size)
        for name, p in probs.items():
            if not np.isfinite(p).all():
                raise Diverged(f"training diverged at epoch {epoch + 1}: the {name!r} output is not finite")
        values = self.score(probs)
        logs.update(values)
        if self.echo:
            print(" - " + self.echo.format(**values), flush=True)
