"""How long the rest of a run's training will take, printed after every epoch.

The same preset runs at very different speeds on different machines (the cpu preset's epoch took 45 s
on one 2-core host and over twice that on another), so a trainer says from its first epoch on how many
epochs of the run are left and how long they take at the median epoch so far, instead of letting the
user find out at the end. Only training epochs are counted (with their validation); building models
and the out-of-fold predictions come on top.
"""
from __future__ import annotations

import json
import time

import keras
import numpy as np

from salt.layout import StageFiles
from training import stage


def epochs_left(stages) -> int:
    """The epochs still to train over ``(stage_dir, epochs)`` pairs: none for a finished stage, those after
    its resume point for a started one, all of them for one not begun."""
    left = 0
    for stage_dir, epochs in stages:
        if stage.is_done(stage_dir):
            continue
        state = StageFiles(stage_dir).state
        trained = json.loads(state.read_text()).get("epoch", 0) if state.exists() else 0
        left += max(0, int(epochs) - int(trained))
    return left


def duration(seconds: float) -> str:
    """12 s, 7 min, 2 h 05 min."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class Pace(keras.callbacks.Callback):
    """Counts a run's epochs down across its stages (one instance is passed to every ``fit_stage`` of the
    run) and prints, after each epoch, the epochs done and the time left at the median ``epoch_s`` so far
    (``stage.EpochTimer``'s, so validation is included)."""

    def __init__(self, epochs: int, clock=time.time):
        super().__init__()
        self.total = self.left = int(epochs)
        self.seconds: list[float] = []
        self.clock = clock

    def seconds_left(self) -> float:
        return self.left * float(np.median(self.seconds)) if self.seconds else float("nan")

    def line(self) -> str:
        median = float(np.median(self.seconds))
        finish = time.strftime("%H:%M", time.localtime(self.clock() + self.seconds_left()))
        return (f"run: {self.total - self.left} of {self.total} epochs done; {duration(self.seconds_left())} of "
                f"training left at {median:.1f} s an epoch (the median so far), until about {finish}")

    def on_epoch_end(self, epoch, logs=None):
        self.left = max(0, self.left - 1)
        self.seconds.append(float(logs["epoch_s"]))
        print(self.line(), flush=True)
