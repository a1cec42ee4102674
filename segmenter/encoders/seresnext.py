"""SE-ResNeXt50 32x4d in Keras 3 (functional API), layer for layer the Cadene `pretrainedmodels` network.

Reference: pretrainedmodels/models/senet.py (`se_resnext50_32x4d`): stem conv7x7/2 (pad 3, no bias) + BN + ReLU
+ MaxPool(3, stride 2, ceil_mode=True); four stages of SEResNeXtBottleneck blocks (groups=32, base_width=4,
reduction=16, stride on the grouped 3x3 conv2, 1x1 downsample conv without padding); global average pool and
`last_linear`. Layer names are the PyTorch state_dict module paths with "." replaced by "_"
("layer1_0_conv1", "layer1_0_se_module_fc1", "layer2_0_downsample_0", "last_linear", ...), so weights convert
by name (see segmenter.convert_weights). BatchNorm: epsilon 1e-5, momentum 0.9 (PyTorch momentum 0.1).

Only keras layers / keras.ops are used, so the model runs on the TensorFlow, JAX and PyTorch backends.
"""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import keras
from keras import layers

from training import devices, weights
from training.layers import IMAGENET_MEAN as MEAN, IMAGENET_STD as STD

ARCH = "se_resnext50_32x4d"
TORCH_FILE = "se_resnext50_32x4d-a260b3a4.pth"
KERAS_FILE = "se_resnext50_32x4d_imagenet.weights.h5"
WEIGHTS_FORMAT = "segmenter.seresnext/1"
BN_EPS = 1e-5
BN_MOMENTUM = 0.9
_ENCODER_NAME = re.compile(r"^(layer[0-4]_|last_linear$)")


def preprocess_input(x):
    """RGB numpy array in [0, 1], channels last -> ImageNet-normalised float32 (what the weights expect)."""
    x = np.asarray(x, dtype="float32")
    return (x - np.array(MEAN, "float32")) / np.array(STD, "float32")


def _bn(x, name):
    return layers.BatchNormalization(epsilon=BN_EPS, momentum=BN_MOMENTUM, name=name)(x)


@keras.saving.register_keras_serializable(package="segmenter")
class GroupedConv2D(layers.Conv2D):
    """Conv2D with ``groups``, the same weights and results, computed on TensorFlow on a CPU as one
    convolution per group: TensorFlow's own grouped convolution has a CPU gradient 60-400x slower than
    that. On a GPU (cuDNN) and on the other backends the native grouped convolution runs."""

    def convolution_op(self, inputs, kernel):
        if self.groups == 1 or keras.backend.backend() != "tensorflow" or devices.has_gpu():
            return super().convolution_op(inputs, kernel)
        xs = keras.ops.split(inputs, self.groups, axis=-1)
        ks = keras.ops.split(kernel, self.groups, axis=-1)
        return keras.ops.concatenate(
            [keras.ops.conv(x, k, strides=self.strides, padding=self.padding, data_format=self.data_format,
                            dilation_rate=self.dilation_rate) for x, k in zip(xs, ks)], axis=-1)


def _conv(x, filters, kernel, stride=1, padding=0, groups=1, name=None):
    """PyTorch-style conv without bias: explicit symmetric zero padding, then a 'valid' convolution."""
    if padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    conv = GroupedConv2D if groups > 1 else layers.Conv2D
    return conv(filters, kernel, strides=stride, padding="valid", groups=groups, use_bias=False, name=name)(x)


def stage_channels(width=1.0, groups=32, base_width=4):
    """[(planes, bottleneck width, output channels)] of the four stages for a width multiplier."""
    out = []
    for i in range(4):
        planes = max(1, int(round(64 * 2 ** i * width)))
        inner = max(1, math.floor(planes * base_width / 64)) * groups
        out.append((planes, inner, planes * 4))
    return out


def _se_module(x, channels, reduction, name):
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_avg_pool")(x)
    s = layers.Conv2D(max(1, channels // reduction), 1, activation="relu", name=f"{name}_fc1")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_fc2")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def _bottleneck(x, inner, out_ch, stride, groups, reduction, downsample, name):
    """SEResNeXtBottleneck: 1x1 -> grouped 3x3 (stride here) -> 1x1, SE, residual add, ReLU."""
    y = _conv(x, inner, 1, name=f"{name}_conv1")
    y = layers.ReLU(name=f"{name}_relu1")(_bn(y, f"{name}_bn1"))
    y = _conv(y, inner, 3, stride=stride, padding=1, groups=groups, name=f"{name}_conv2")
    y = layers.ReLU(name=f"{name}_relu2")(_bn(y, f"{name}_bn2"))
    y = _bn(_conv(y, out_ch, 1, name=f"{name}_conv3"), f"{name}_bn3")
    y = _se_module(y, out_ch, reduction, f"{name}_se_module")
    if downsample:
        x = _bn(_conv(x, out_ch, 1, stride=stride, name=f"{name}_downsample_0"), f"{name}_downsample_1")
    y = layers.Add(name=f"{name}_add")([y, x])
    return layers.ReLU(name=f"{name}_relu")(y)


def build_encoder(input_tensor, layers=(3, 4, 6, 3), width=1.0, groups=32, base_width=4, reduction=16):
    """SE-ResNeXt feature tensors for a U-Net, from an (already normalised) RGB tensor.

    Returns [stem (stride 2, before the max pool), layer1 (stride 4), layer2 (8), layer3 (16), layer4 (32)].
    `layers` = blocks per stage, `width` multiplies all channel counts (groups are kept).
    """
    blocks = layers
    from keras import layers as L  # the argument `layers` shadows the module
    stem_ch = max(1, int(round(64 * width)))
    x = _conv(input_tensor, stem_ch, 7, stride=2, padding=3, name="layer0_conv1")
    x = L.ReLU(name="layer0_relu1")(_bn(x, "layer0_bn1"))
    feats = [x]
    # MaxPool2d(3, stride=2, ceil_mode=True): one extra row/column at the bottom/right gives exactly the
    # ceil-mode output size; the input is post-ReLU (>= 0) and every window holds a real pixel, so zero
    # padding acts like -inf padding.
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="layer0_pool_pad")(x)
    x = L.MaxPooling2D(3, strides=2, padding="valid", name="layer0_pool")(x)
    in_ch = stem_ch
    for s, ((planes, inner, out_ch), n) in enumerate(zip(stage_channels(width, groups, base_width), blocks)):
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            downsample = b == 0 and (stride != 1 or in_ch != out_ch)
            x = _bottleneck(x, inner, out_ch, stride, groups, reduction, downsample, f"layer{s + 1}_{b}")
            in_ch = out_ch
        feats.append(x)
    return feats


def se_resnext50_32x4d(input_shape=(224, 224, 3), include_top=True, classes=1000, weights=None,
                       input_tensor=None, layers=(3, 4, 6, 3), width=1.0, groups=32, base_width=4,
                       reduction=16, name=ARCH):
    """SE-ResNeXt50 32x4d as a keras.Model, like a keras.applications function.

    Input: ImageNet-normalised RGB (see `preprocess_input`), channels last. include_top=True -> (N, classes)
    logits (global average pool + Dense "last_linear"; equals PyTorch's AvgPool2d(7) at 224x224);
    include_top=False -> the layer4 feature map (stride 32). weights: None (random) or a `.weights.h5`
    file written by segmenter.convert_weights (last_linear is skipped when include_top=False).
    """
    inp = keras.Input(shape=input_shape, name="image") if input_tensor is None else input_tensor
    feats = build_encoder(inp, layers=layers, width=width, groups=groups, base_width=base_width,
                          reduction=reduction)
    x = feats[-1]
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(classes, name="last_linear")(x)
    inputs = inp if input_tensor is None else keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model, path):
    """Load a converter-written `.weights.h5` into every encoder layer of `model`, by layer name.

    Works for the classifier model (with or without top) and for any model that embeds the encoder
    (e.g. the U-Net). Raises salt.cli.UserError if the file is missing/unreadable, an encoder layer of the
    model is not in the file, or a shape differs. Returns the number of layers loaded.
    """
    import h5py
    from salt.cli import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"{path}: not an HDF5 weights file ({e})") from None
    n = 0
    with f:
        if f.attrs.get("format") != WEIGHTS_FORMAT:
            raise UserError(f"{path}: not a {WEIGHTS_FORMAT} file (write it with python -m segmenter.convert_weights)")
        for layer in model.layers:
            if not layer.weights or not _ENCODER_NAME.match(layer.name):
                continue
            if layer.name not in f:
                raise UserError(f"{path}: no weights for layer {layer.name}")
            group = f[layer.name]
            values = []
            for v in layer.weights:
                key = v.name.split("/")[-1]
                if key not in group:
                    raise UserError(f"{path}: no {key} for layer {layer.name}")
                arr = group[key][()]
                if tuple(arr.shape) != tuple(v.shape):
                    raise UserError(f"{path}: {layer.name}/{key} has shape {arr.shape}, model expects "
                                    f"{tuple(v.shape)} (other depth/width/classes?)")
                values.append(arr)
            for v, arr in zip(layer.weights, values):
                v.assign(arr.astype(v.dtype))
            n += 1
    return n


def find_imagenet(cache_dir=None) -> Path | None:
    """The ImageNet weights as a converter-written file, or None after one warning.

    Looks in `cache_dir` (default Keras' cache folder, training.weights.models_dir()) for
    se_resnext50_32x4d_imagenet.weights.h5; if only the PyTorch checkpoint se_resnext50_32x4d-a260b3a4.pth
    is there, converts it once (needs torch; atomic write).
    """
    folder = Path(cache_dir) if cache_dir is not None else weights.models_dir()
    out, pth = folder / KERAS_FILE, folder / TORCH_FILE
    if out.is_file():
        return out
    reason = f"neither {KERAS_FILE} nor {TORCH_FILE} is in {folder}"
    if pth.is_file():
        try:
            import torch  # noqa: F401
        except ImportError:
            reason = f"found {pth} but cannot convert it: torch is not installed"
        else:
            from segmenter.convert_weights import convert
            print(f"converting {pth} -> {out} (first use)", file=sys.stderr, flush=True)
            convert(pth, out)
            print(f"wrote {out}", file=sys.stderr, flush=True)
            return out
    weights.warn_random(ARCH, reason, f"Put {TORCH_FILE} (Cadene pretrainedmodels) or {KERAS_FILE} "
                                      f"(python -m segmenter.convert_weights) in {folder}.")
    return None
