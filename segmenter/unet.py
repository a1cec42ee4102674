"""U-Net decoder and heads over any registered encoder, for 101x101 TGS salt images (keras.ops only).

Inside the model: grey [0, 1] image -> 3 channels -> ImageNet normalisation -> reflect-pad (fit="pad") or
bilinear resize (fit="resize") to input_size -> encoder (segmenter.encoders) -> decoder blocks (upsample,
skip from every encoder stage, two conv-BN-ReLU, scSE attention) -> hypercolumn (all decoder outputs
upsampled to full size and concatenated) -> head -> cropped / resized back to 101x101.

Outputs (dict, float32 logits): "mask" (N,101,101,1), "salt" (N,1) image-level "has salt" from the globally
pooled bottleneck, with edge=True "edge" (N,101,101,1) salt boundary, and with deep_supervision=True
"mask_ds1".."mask_ds{n-1}" (N,101,101,1): a mask from each decoder block but the last, for their own losses
(deep supervision, as in the 1st-place TGS solution); prediction uses "mask" alone.
Custom layers are registered, so `keras.saving.load_model(path)` works after `import segmenter.unet`.
"""
from __future__ import annotations

import math

import keras
from keras import layers as L, ops

from salt.data import IMG_SIZE
from segmenter import encoders, losses  # noqa: F401  (losses: registered so compiled .keras files reload)
from training.layers import ImageNetNormalize


@keras.saving.register_keras_serializable(package="segmenter")
class ReflectPad2D(L.Layer):
    """Reflect padding of a channels-last image: padding = ((top, bottom), (left, right))."""

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        self.padding = tuple(tuple(int(p) for p in pair) for pair in padding)

    def call(self, x):
        (t, b), (l, r) = self.padding
        return ops.pad(x, [[0, 0], [t, b], [l, r], [0, 0]], mode="reflect")

    def compute_output_shape(self, s):
        (t, b), (l, r) = self.padding
        return (s[0], None if s[1] is None else s[1] + t + b, None if s[2] is None else s[2] + l + r, s[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def conv_bn_relu(x, filters, name, kernel=3, dilation=1):
    x = L.Conv2D(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def scse(x, name, reduction=8):
    """Concurrent spatial and channel squeeze & excitation (Roy et al. 2018): x*cSE(x) + x*sSE(x)."""
    c = x.shape[-1]
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_cse_pool")(x)
    s = L.Conv2D(max(1, c // reduction), 1, activation="relu", name=f"{name}_cse_fc1")(s)
    s = L.Conv2D(c, 1, activation="sigmoid", name=f"{name}_cse_fc2")(s)
    q = L.Conv2D(1, 1, activation="sigmoid", name=f"{name}_sse_conv")(x)
    return L.Add(name=f"{name}_scse")([L.Multiply(name=f"{name}_cse")([x, s]), L.Multiply(name=f"{name}_sse")([x, q])])


def decoder_block(x, skip, filters, name):
    x = L.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
    if skip is not None:
        x = L.Concatenate(name=f"{name}_cat")([x, skip])
    x = conv_bn_relu(x, filters, f"{name}_1")
    x = conv_bn_relu(x, filters, f"{name}_2")
    return scse(x, name)


def _pad_split(size):
    extra = size - IMG_SIZE
    return extra // 2, extra - extra // 2


def deep_supervision_names(blocks: int) -> list[str]:
    """The deep-supervision outputs of a network with ``blocks`` decoder blocks: one per block but the last."""
    return [f"mask_ds{i}" for i in range(1, blocks)]


def build_unet(encoder="seresnext50", encoder_args=None, input_size=128, fit="pad",
               decoder_filters=(256, 128, 64, 32, 16), dropout=0.3, edge=False, encoder_weights=None,
               hypercolumn=True, salt_units=64, dropout_before_head_bn=True, head_kernel=3, deep_supervision=False,
               name="unet", device=None):
    """U-Net: input (N,101,101,1) float32 in [0,1] -> {"mask", "salt"[, "edge"]} float32 logits.

    encoder: a name of segmenter.encoders.ENCODERS, built with ``encoder_args``. input_size: the network's
    resolution (a multiple of the encoder's deepest stride); fit: "pad" (reflect pad 101 -> input_size,
    split e.g. 13/14 for 128) or "resize" (bilinear). decoder_filters: one width per decoder block, from
    the deepest: a block per encoder skip and then up to full resolution. encoder_weights: None or a
    weights file for the encoder. dropout_before_head_bn: dropout sits in front of the head's
    conv-BN-ReLU (BatchNormalization then learns its moving statistics on dropped-out activations);
    False puts it after the head's ReLU, in front of the 1x1 output convolutions. head_kernel: the size of
    the head's convolution over the hypercolumn (3; 1 costs a ninth of it at full resolution). The global
    mixed-precision policy is respected; all outputs are float32. deep_supervision: a 1x1 convolution on
    every decoder block but the last gives a mask logit, upsampled bilinearly to full size ("mask_ds{i}").
    device: the layers' choices for the device the network runs on (training.devices.layer_choices), given
    to the encoder (segmenter.encoders); None leaves its defaults, right on every device.
    """
    if fit not in ("pad", "resize"):
        raise ValueError(f"fit must be 'pad' or 'resize', got {fit!r}")
    if fit == "pad" and input_size < IMG_SIZE:
        raise ValueError(f"fit='pad' needs input_size >= {IMG_SIZE}, got {input_size}")

    spec = encoders.get(encoder)
    inp = keras.Input((IMG_SIZE, IMG_SIZE, 1), name="image", dtype="float32")
    x = ImageNetNormalize(spec.normalize, name="imagenet_normalize", dtype="float32")(inp)
    if fit == "pad":
        pad = (_pad_split(input_size), _pad_split(input_size))
        x = ReflectPad2D(pad, name="reflect_pad", dtype="float32")(x)
    else:
        x = L.Resizing(input_size, input_size, interpolation="bilinear", name="resize_in", dtype="float32")(x)

    feats = spec.features(x, device=device, **(encoder_args or {}))
    deepest = input_size // feats[-1].shape[1]
    if feats[-1].shape[1] * deepest != input_size:
        raise ValueError(f"input_size {input_size} is not a multiple of the encoder's stride {deepest}")
    blocks = int(round(math.log2(deepest)))
    if len(decoder_filters) != blocks:
        raise ValueError(f"the {encoder} encoder has stride {deepest}: give {blocks} decoder_filters, "
                         f"got {len(decoder_filters)}")
    skips = list(reversed(feats[:-1])) + [None] * (blocks - len(feats) + 1)
    x, outs = feats[-1], []
    for i, (skip, f) in enumerate(zip(skips, decoder_filters)):
        x = decoder_block(x, skip, f, f"decoder{i + 1}")
        outs.append(x)
    if hypercolumn:
        ups = [L.UpSampling2D(input_size // o.shape[1], interpolation="bilinear", name=f"hypercolumn_up{i + 1}")(o)
               for i, o in enumerate(outs[:-1])]
        x = L.Concatenate(name="hypercolumn")(ups + [outs[-1]])
    head_filters = max(8, decoder_filters[-1])
    if dropout_before_head_bn:
        x = conv_bn_relu(L.Dropout(dropout, name="head_dropout")(x), head_filters, "head", head_kernel)
    else:
        x = L.Dropout(dropout, name="head_dropout")(conv_bn_relu(x, head_filters, "head", head_kernel))

    def to_101(t, out_name):
        if fit == "pad":
            return L.Cropping2D(pad, name=out_name, dtype="float32")(t)
        return L.Resizing(IMG_SIZE, IMG_SIZE, interpolation="bilinear", name=out_name, dtype="float32")(t)

    outputs = {"mask": to_101(L.Conv2D(1, 1, name="mask_logits", dtype="float32")(x), "mask")}
    s = L.GlobalAveragePooling2D(name="salt_pool")(feats[-1])
    s = L.Dropout(dropout, name="salt_dropout")(s)
    s = L.Dense(salt_units, activation="relu", name="salt_hidden")(s)
    outputs["salt"] = L.Dense(1, name="salt", dtype="float32")(s)
    if edge:
        outputs["edge"] = to_101(L.Conv2D(1, 1, name="edge_logits", dtype="float32")(x), "edge")
    if deep_supervision:
        for out_name, o in zip(deep_supervision_names(len(outs)), outs):
            z = L.Conv2D(1, 1, name=f"{out_name}_logits", dtype="float32")(o)
            z = L.UpSampling2D(input_size // o.shape[1], interpolation="bilinear", name=f"{out_name}_up",
                               dtype="float32")(z)
            outputs[out_name] = to_101(z, out_name)

    model = keras.Model(inp, outputs, name=name)
    if encoder_weights is not None:
        if spec.pretrained is None:
            raise ValueError(f"the {encoder} encoder has no weights files to load")
        spec.load_weights(model, encoder_weights)
    return model
