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
from pathlib import Path

import numpy as np
import keras
from keras import layers

import segmenter.encoders.pretrained as pretrained
from segmenter.encoders.pretrained import Pretrained
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
    """Conv2D with ``groups``, the same weights and results, computed as one convolution per group where
    ``split_groups`` is True (the default, right on every backend and device), as the backend's grouped
    convolution where it is False, and split in training only (``"train"``), native at inference. Whoever
    builds the network knows the device and chooses (training.devices.layer_choices): TensorFlow's grouped
    convolution has a CPU gradient 60-400x slower than the split one, and XLA's on a CPU (JAX) makes a
    training step about 5x slower while its forward pass is as fast as the split one and compiles 3x
    sooner; on a GPU (cuDNN) and on PyTorch the native one runs."""

    def __init__(self, *args, split_groups: bool | str = True, **kwargs):
        super().__init__(*args, **kwargs)
        if split_groups not in (True, False, "train"):
            raise ValueError(f"split_groups {split_groups!r}: True, False or 'train'")
        self.split_groups = split_groups
        self._split_now = split_groups is True

    def get_config(self):
        return {**super().get_config(), "split_groups": self.split_groups}

    def call(self, inputs, training=None):
        self._split_now = self.split_groups is True or (self.split_groups == "train" and bool(training))
        return super().call(inputs)

    def convolution_op(self, inputs, kernel):
        if self.groups == 1 or not self._split_now:
            return super().convolution_op(inputs, kernel)
        xs = keras.ops.split(inputs, self.groups, axis=-1)
        ks = keras.ops.split(kernel, self.groups, axis=-1)
        return keras.ops.concatenate(
            [keras.ops.conv(x, k, strides=self.strides, padding=self.padding, data_format=self.data_format,
                            dilation_rate=self.dilation_rate) for x, k in zip(xs, ks)], axis=-1)


def _conv(x, filters, kernel, stride=1, padding=0, groups=1, name=None, split_groups=True):
    """PyTorch-style conv without bias: explicit symmetric zero padding, then a 'valid' convolution."""
    if padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    if groups > 1:
        return GroupedConv2D(filters, kernel, strides=stride, padding="valid", groups=groups, use_bias=False,
                             name=name, split_groups=split_groups)(x)
    return layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, name=name)(x)


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


def _bottleneck(x, inner, out_ch, stride, groups, reduction, downsample, name, split_groups=True):
    """SEResNeXtBottleneck: 1x1 -> grouped 3x3 (stride here) -> 1x1, SE, residual add, ReLU."""
    y = _conv(x, inner, 1, name=f"{name}_conv1")
    y = layers.ReLU(name=f"{name}_relu1")(_bn(y, f"{name}_bn1"))
    y = _conv(y, inner, 3, stride=stride, padding=1, groups=groups, name=f"{name}_conv2", split_groups=split_groups)
    y = layers.ReLU(name=f"{name}_relu2")(_bn(y, f"{name}_bn2"))
    y = _bn(_conv(y, out_ch, 1, name=f"{name}_conv3"), f"{name}_bn3")
    y = _se_module(y, out_ch, reduction, f"{name}_se_module")
    if downsample:
        x = _bn(_conv(x, out_ch, 1, stride=stride, name=f"{name}_downsample_0"), f"{name}_downsample_1")
    y = layers.Add(name=f"{name}_add")([y, x])
    return layers.ReLU(name=f"{name}_relu")(y)


def build_encoder(input_tensor, layers=(3, 4, 6, 3), width=1.0, groups=32, base_width=4, reduction=16,
                  split_groups=True):
    """SE-ResNeXt feature tensors for a U-Net, from an (already normalised) RGB tensor.

    Returns [stem (stride 2, before the max pool), layer1 (stride 4), layer2 (8), layer3 (16), layer4 (32)].
    `layers` = blocks per stage, `width` multiplies all channel counts (groups are kept); `split_groups`:
    the grouped convolutions' device choice (GroupedConv2D).
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
            x = _bottleneck(x, inner, out_ch, stride, groups, reduction, downsample, f"layer{s + 1}_{b}",
                            split_groups)
            in_ch = out_ch
        feats.append(x)
    return feats


def se_resnext50_32x4d(input_shape=(224, 224, 3), include_top=True, classes=1000, weights=None,
                       input_tensor=None, layers=(3, 4, 6, 3), width=1.0, groups=32, base_width=4,
                       reduction=16, name=ARCH, split_groups=True):
    """SE-ResNeXt50 32x4d as a keras.Model, like a keras.applications function.

    Input: ImageNet-normalised RGB (see `preprocess_input`), channels last. include_top=True -> (N, classes)
    logits (global average pool + Dense "last_linear"; equals PyTorch's AvgPool2d(7) at 224x224);
    include_top=False -> the layer4 feature map (stride 32). weights: None (random) or a `.weights.h5`
    file written by segmenter.convert_weights (last_linear is skipped when include_top=False).
    """
    inp = keras.Input(shape=input_shape, name="image") if input_tensor is None else input_tensor
    feats = build_encoder(inp, layers=layers, width=width, groups=groups, base_width=base_width,
                          reduction=reduction, split_groups=split_groups)
    x = feats[-1]
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(classes, name="last_linear")(x)
    inputs = inp if input_tensor is None else keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_weights(model, weights)
    return model


BN_KEYS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def expected_shapes(layers=(3, 4, 6, 3), classes=1000, groups=32, reduction=16):
    """{torch state_dict key: shape} of se_resnext50_32x4d (num_batches_tracked left out)."""
    shapes = {}

    def conv(name, o, i, k, bias=False):
        shapes[f"{name}.weight"] = (o, i, k, k)
        if bias:
            shapes[f"{name}.bias"] = (o,)

    def bn(name, c):
        for k in BN_KEYS:
            shapes[f"{name}.{k}"] = (c,)

    conv("layer0.conv1", 64, 3, 7)
    bn("layer0.bn1", 64)
    in_ch = 64
    for s, ((_, inner, out_ch), n) in enumerate(zip(stage_channels(1.0, groups, 4), layers)):
        for b in range(n):
            p = f"layer{s + 1}.{b}"
            conv(f"{p}.conv1", inner, in_ch, 1)
            bn(f"{p}.bn1", inner)
            conv(f"{p}.conv2", inner, inner // groups, 3)
            bn(f"{p}.bn2", inner)
            conv(f"{p}.conv3", out_ch, inner, 1)
            bn(f"{p}.bn3", out_ch)
            conv(f"{p}.se_module.fc1", out_ch // reduction, out_ch, 1, bias=True)
            conv(f"{p}.se_module.fc2", out_ch, out_ch // reduction, 1, bias=True)
            if b == 0:
                conv(f"{p}.downsample.0", out_ch, in_ch, 1)
                bn(f"{p}.downsample.1", out_ch)
            in_ch = out_ch
    shapes["last_linear.weight"] = (classes, in_ch)
    shapes["last_linear.bias"] = (classes,)
    return shapes


def keras_weights(sd, source="checkpoint"):
    """A validated se_resnext50_32x4d state dict (numpy) -> {keras layer name: {variable name: array}}:
    convolutions OIHW -> HWIO (grouped: torch (O, I/g, H, W) -> keras (H, W, I/g, O), same group order),
    Linear (out, in) -> (in, out)."""
    from salt.cli import UserError
    if "last_linear.weight" not in sd:
        raise UserError(f"{source}: missing key last_linear.weight (not a {ARCH} state_dict?)")
    want = expected_shapes(classes=sd["last_linear.weight"].shape[0])
    missing = sorted(set(want) - set(sd))
    extra = sorted(set(sd) - set(want))
    if missing or extra:
        what = (f"{len(missing)} missing keys (e.g. {missing[0]})" if missing else "") + \
               (", " if missing and extra else "") + \
               (f"{len(extra)} unexpected keys (e.g. {extra[0]})" if extra else "")
        raise UserError(f"{source}: not a {ARCH} state_dict: {what}")
    for k, shape in want.items():
        if tuple(sd[k].shape) != shape:
            raise UserError(f"{source}: {k} has shape {tuple(sd[k].shape)}, expected {shape}")
    out = {}
    for key, arr in sd.items():
        module, param = key.rsplit(".", 1)
        layer = module.replace(".", "_")
        if module == "last_linear":
            out.setdefault(layer, {})["kernel" if param == "weight" else "bias"] = arr.T if arr.ndim == 2 else arr
        elif arr.ndim == 4:  # conv weight OIHW -> HWIO
            out.setdefault(layer, {})["kernel"] = arr.transpose(2, 3, 1, 0)
        elif ".se_module." in key:  # SE conv bias
            out.setdefault(layer, {})["bias"] = arr
        else:  # batch norm
            out.setdefault(layer, {})[BN_KEYS[param]] = arr
    return out


# Cadene pretrainedmodels' checkpoint: the file name carries the first 8 hex digits of its SHA-256 (checked
# as torch.hub does); downloaded by Keras' get_file into Keras' cache folder where the network allows.
PRETRAINED = Pretrained(
    label=ARCH, file=TORCH_FILE, sha256="a260b3a4", to_keras=keras_weights, keras_file=KERAS_FILE,
    format=WEIGHTS_FORMAT, is_encoder_layer=lambda name: bool(_ENCODER_NAME.match(name)),
    url="http://data.lip6.fr/cadene/pretrainedmodels/" + TORCH_FILE)


def load_weights(model, path):
    """Load a converted `.weights.h5` into every encoder layer of `model` (the classifier model with or
    without top, the U-Net), by layer name; returns the number of layers loaded. UserError when the file is
    missing/unreadable, an encoder layer of the model is not in the file, or a shape differs."""
    return pretrained.load(model, path, PRETRAINED)


def find_imagenet(cache_dir=None) -> Path | None:
    """The ImageNet weights as a converted file in Keras' cache folder (from the checkpoint there, or
    downloaded), or None after one warning (segmenter.encoders.pretrained.find_imagenet)."""
    return pretrained.find_imagenet(PRETRAINED, cache_dir)
