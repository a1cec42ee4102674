"""A compact residual encoder made for a CPU: ResNet basic blocks (two 3x3 convolution-BN pairs and an
identity or 1x1 shortcut), no grouped convolutions (they run poorly on a CPU), channel counts that are
multiples of 16 (the vector width of the CPU kernels), and a first stage at the input's full resolution
(``stem_stride=1``) so that thin salt bodies are seen at the metric's own resolution.

Stage 0 runs at ``stem_stride``; each later stage halves the size in its first block (strided 3x3
convolution, 1x1 strided shortcut). ``dilation`` > 1 gives the last stage dilated convolutions (a wider
view without another halving). No ImageNet weights exist for it: it always starts random.
"""
from __future__ import annotations

from keras import layers as L


def _conv_bn(x, filters, stride, name, dilation=1, relu=True):
    x = L.Conv2D(filters, 3, strides=stride, padding="same", dilation_rate=dilation, use_bias=False,
                 name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def basic_block(x, filters, stride, name, dilation=1):
    """y = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))."""
    y = _conv_bn(x, filters, stride, f"{name}_1", dilation)
    y = _conv_bn(y, filters, 1, f"{name}_2", dilation, relu=False)
    if stride != 1 or x.shape[-1] != filters:
        x = L.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_short_conv")(x)
        x = L.BatchNormalization(name=f"{name}_short_bn")(x)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([x, y]))


def build_encoder(x, channels=(16, 32, 64, 128, 256), blocks=(1, 2, 2, 2, 1), stem_stride=1, dilation=1):
    """Feature maps of every stage, strides stem_stride * (1, 2, 4, ...)."""
    if len(channels) != len(blocks):
        raise ValueError(f"channels {channels} and blocks {blocks} differ in length")
    x = _conv_bn(x, channels[0], stem_stride, "stem")
    feats = []
    for s, (c, n) in enumerate(zip(channels, blocks)):
        for b in range(n):
            last = s == len(channels) - 1
            x = basic_block(x, c, 2 if s > 0 and b == 0 else 1, f"stage{s}_{b}", dilation if last and b else 1)
        feats.append(x)
    return feats
