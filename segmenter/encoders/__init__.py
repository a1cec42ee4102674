"""The encoders both models draw from, by name, as segmentation_models and timm name theirs.

An encoder is a function ``build(x, **args) -> [features]`` from the normalised RGB tensor to feature
maps of strides 2, 4, 8, 16 and 32, and, where ImageNet weights exist, a ``Pretrained`` entry that says
where they come from and how to read them (``segmenter.encoders.pretrained``: one loader for all). The
U-Net's decoder and heads (``segmenter.unet``) are shared by every encoder; the classifier puts a pooling
head on the last feature map built with ``pooled_args``. A preset names its encoder and arguments.
"""
from segmenter.encoders.registry import ENCODERS, Encoder, get  # noqa: F401  (the registry, by name)
