"""The networks a benchmark times, built, compiled and fed exactly as their trainers do it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np

from training import devices

IMG = 101


@dataclass
class Subject:
    label: str
    model: keras.Model
    targets: Callable            # masks -> the model's targets
    fit_parts: Callable          # (images, masks, val_images, val_masks, epochs) -> (batches, callbacks)
    monitor: str
    mode: str
    batch: int
    info: dict = field(default_factory=dict)


def segmenter(preset_name: str, precision: str) -> Subject:
    from segmenter import train
    from segmenter.presets import PRESETS

    preset = PRESETS[preset_name]
    devices.new_session(0, precision, preset["batch_size"])
    model = train.build_model(preset, None)
    rnd = preset["rounds"][0]
    train.compile_model(model, preset, rnd)

    def parts(images, masks, val_images, val_masks, epochs):
        return train.fit_parts(preset, {**rnd, "epochs": epochs}, images, masks, val_images, val_masks, seed=0)

    net = preset["network"]
    info = {"network": net, "loss": rnd["loss"], "input": f"(N,101,101,1), {'reflect-padded' if net['fit'] == 'pad' else 'resized'} "
                                                          f"to {net['input_size']}x{net['input_size']} inside"}
    return Subject(f"segmenter ({preset_name}: {net['encoder']} U-Net)", model,
                   train.make_targets(net["edge"]), parts, train.MONITOR, "max", preset["batch_size"], info)


def classifier(preset_name: str, precision: str, backbone: str = "densenet121") -> Subject:
    from classifier import train
    from classifier.model import build_classifier
    from classifier.presets import PRESETS

    preset = PRESETS[preset_name]
    st = preset["stages"][-1]  # fine-tuning: the whole network trains
    devices.new_session(0, precision, preset["batch_size"])
    model, _ = build_classifier(backbone, preset["input_size"], "none", preset["dropout"])
    train.compile_model(model, st["lr"])

    def parts(images, masks, val_images, val_masks, epochs):
        return train.fit_parts(preset, epochs, st["lr"], images, masks, val_images, val_masks, seed=0)

    size = preset["input_size"]
    info = {"input": f"(N,101,101,1), resized to {size}x{size} inside", "input_size": size}
    return Subject(f"classifier ({preset_name}: {backbone})", model, train.empty_targets, parts, train.MONITOR,
                   "min", preset["batch_size"], info)


def fake_data(n: int, seed: int = 0):
    """Random uint8 images (n,101,101) and bool masks of salt discs, a third of them empty."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, IMG, IMG), dtype=np.uint8)
    yy, xx = np.mgrid[:IMG, :IMG]
    cy, cx, r = rng.uniform(0, IMG, (3, n, 1, 1))
    masks = (yy - cy) ** 2 + (xx - cx) ** 2 < (r * 0.6) ** 2
    masks[: n // 3] = False
    return images, masks
