"""Learning-rate schedules, set once per epoch by Keras' own LearningRateScheduler.

The rate lives in the optimizer's learning-rate variable rather than in the compiled step, so one
compiled step serves every round and fold whatever its rates and lengths, and a resumed run gets the
same rate for the same epoch.
"""
from __future__ import annotations

import math

import keras


def cosine(epochs: int, lr: float, warmup: int = 0, alpha: float = 0.02):
    """lr(epoch): linear warm-up to ``lr`` over ``warmup`` epochs, then a cosine decay to ``alpha * lr``
    at the last epoch."""
    def rate(epoch: int, _current=None) -> float:
        if epoch < warmup:
            return lr * (epoch + 1) / (warmup + 1)
        t = (epoch - warmup) / max(1, epochs - 1 - warmup)
        return lr * (alpha + (1.0 - alpha) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t))))
    return rate


def scheduler(epochs: int, lr: float, warmup: int = 0, alpha: float = 0.02) -> keras.callbacks.Callback:
    return keras.callbacks.LearningRateScheduler(cosine(epochs, lr, warmup, alpha))
