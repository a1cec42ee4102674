"""Encoders of the U-Net, by name, as segmentation_models and timm name theirs.

An encoder is a function ``build(x, **args) -> [features]`` from the normalised RGB tensor to feature
maps of increasing stride (each half the size of the one before), and optionally a finder of its
ImageNet weights (``find_imagenet() -> path or None``, which warns when there are none). The decoder and
heads in ``segmenter.unet`` are shared by every encoder; a preset names its encoder and arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from salt.cli import UserError
from segmenter.encoders import resnet, seresnext


@dataclass(frozen=True)
class Encoder:
    build: Callable
    find_imagenet: Callable | None = None  # None: no ImageNet weights exist for it
    load_weights: Callable | None = None   # (model, path): loads a weights file into the encoder's layers
    doc: str = ""


ENCODERS: dict[str, Encoder] = {
    "seresnext50": Encoder(seresnext.build_encoder, seresnext.find_imagenet, seresnext.load_weights,
                           "SE-ResNeXt50 32x4d (pretrainedmodels' layout; depth, width and groups adjustable); "
                           "strides 2-32"),
    "resnet": Encoder(resnet.build_encoder, None, None,
                      "compact residual encoder for a CPU: basic blocks, no grouped convolutions, first stage at "
                      "full resolution; random initialisation only"),
}


def get(name: str) -> Encoder:
    if name not in ENCODERS:
        raise UserError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name]
