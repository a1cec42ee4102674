"""Validation at the end of epochs, by the model's own measure, on the fold's held-out images."""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from training.predict import predict_outputs
from training.stage import Diverged


class Validation(keras.callbacks.Callback):
    """Predicts the validation images at the end of an epoch (whole batches, no test-time augmentation)
    and adds ``score(probabilities)`` to the epoch's logs, e.g. ``{"val_score": ...}``.

    With ``every`` > 1 only every ``every``-th epoch and the last of ``epochs`` are validated; the others
    log NaN under ``names`` (the keys ``score`` returns), which the checkpoint passes over and the CSV log
    keeps as empty points. On a CPU a validation pass costs about a twentieth of an epoch.

    A prediction that is not finite stops the stage as diverged: a NaN network would otherwise predict
    all-empty masks and score the share of empty images.
    """

    def __init__(self, images: np.ndarray, score: Callable[[dict], dict], batch_size: int, echo: str = "",
                 every: int = 1, epochs: int | None = None, names: tuple[str, ...] = ()):
        super().__init__()
        if every > 1 and (epochs is None or not names):
            raise ValueError("validating every few epochs needs the stage's epochs and the score's names")
        self.images, self.score, self.batch_size, self.echo = images, score, batch_size, echo
        self.every, self.epochs, self.names = max(1, int(every)), epochs, tuple(names)

    def due(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` is validated."""
        return (epoch + 1) % self.every == 0 or (self.epochs is not None and epoch + 1 >= self.epochs)

    def on_epoch_end(self, epoch, logs=None):
        if not self.due(epoch):
            logs.update({name: float("nan") for name in self.names})
            return
        probs = predict_outputs(self.model, self.images, tta=False, batch_size=self.batch_size)
        for name, p in probs.items():
            if not np.isfinite(p).all():
                raise Diverged(f"training diverged at epoch {epoch + 1}: the {name!r} output is not finite")
        values = self.score(probs)
        logs.update(values)
        if self.echo:
            print(" - " + self.echo.format(**values), flush=True)
