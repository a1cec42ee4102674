"""U-Net on an SE-ResNeXt encoder for 101x101 TGS salt images (Keras 3, keras.ops only).

Inside the model: grey [0, 1] image -> 3 channels -> ImageNet normalisation -> reflect-pad (fit="pad") or
bilinear resize (fit="resize") to input_size -> SE-ResNeXt encoder -> decoder blocks (upsample x2, skip
from every encoder stage, two conv-BN-ReLU, scSE attention) -> hypercolumn (all decoder outputs upsampled
to full size and concatenated) -> dropout -> heads -> cropped / resized back to 101x101.

Outputs (dict, float32 logits): "mask" (N,101,101,1), "salt" (N,1) image-level "has salt" from the globally
pooled bottleneck, and with edge=True "edge" (N,101,101,1) salt boundary.
Custom layers are registered, so `keras.saving.load_model(path)` works after `import segmenter.unet`.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from segmenter import losses  # noqa: F401  (registers the losses so compiled .keras files reload)
from segmenter.seresnext import MEAN, STD, build_encoder, load_weights

IMG_SIZE = 101


@keras.saving.register_keras_serializable(package="segmenter")
class ImageNetNormalize(layers.Layer):
    """Grey or RGB image in [0, 1] -> RGB normalised with the ImageNet mean/std."""

    def __init__(self, mean=MEAN, std=STD, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def call(self, x):
        if x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        mean = ops.cast(ops.convert_to_tensor(self.mean), x.dtype)
        std = ops.cast(ops.convert_to_tensor(self.std), x.dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="segmenter")
class ReflectPad2D(layers.Layer):
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


def _conv_bn_relu(x, filters, name):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def scse(x, name, reduction=8):
    """Concurrent spatial and channel squeeze & excitation (Roy et al. 2018): x*cSE(x) + x*sSE(x)."""
    c = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_cse_pool")(x)
    s = layers.Conv2D(max(1, c // reduction), 1, activation="relu", name=f"{name}_cse_fc1")(s)
    s = layers.Conv2D(c, 1, activation="sigmoid", name=f"{name}_cse_fc2")(s)
    q = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_sse_conv")(x)
    return layers.Add(name=f"{name}_scse")([layers.Multiply(name=f"{name}_cse")([x, s]),
                                            layers.Multiply(name=f"{name}_sse")([x, q])])


def _decoder_block(x, skip, filters, name):
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
    if skip is not None:
        x = layers.Concatenate(name=f"{name}_cat")([x, skip])
    x = _conv_bn_relu(x, filters, f"{name}_1")
    x = _conv_bn_relu(x, filters, f"{name}_2")
    return scse(x, name)


def _pad_split(size):
    extra = size - IMG_SIZE
    return extra // 2, extra - extra // 2


def build_unet(input_size=128, fit="pad", layers=(3, 4, 6, 3), width=1.0, decoder_filters=None,
               dropout=0.3, edge=False, encoder_weights=None, hypercolumn=True, groups=32, salt_units=None,
               name="seresnext_unet"):
    """SE-ResNeXt U-Net: input (N,101,101,1) float32 in [0,1] -> {"mask", "salt"[, "edge"]} logits.

    input_size: network resolution (multiple of 32); fit: "pad" (reflect pad 101 -> input_size, split
    e.g. 13/14 for 128; input_size >= 101) or "resize" (bilinear). layers/width/groups: encoder depth and
    channel multiplier. decoder_filters: 5 decoder block widths (default (256,128,64,32,16) * width,
    at least 8). encoder_weights: None or a converter-written .weights.h5 (loaded into the encoder).
    The global mixed-precision policy is respected; all outputs are float32.
    """
    blocks = layers
    L = keras.layers
    if input_size % 32:
        raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
    if fit not in ("pad", "resize"):
        raise ValueError(f"fit must be 'pad' or 'resize', got {fit!r}")
    if fit == "pad" and input_size < IMG_SIZE:
        raise ValueError(f"fit='pad' needs input_size >= {IMG_SIZE}, got {input_size}")
    if decoder_filters is None:
        decoder_filters = tuple(max(8, int(round(f * width))) for f in (256, 128, 64, 32, 16))
    if len(decoder_filters) != 5:
        raise ValueError("decoder_filters needs 5 values")

    inp = keras.Input((IMG_SIZE, IMG_SIZE, 1), name="image", dtype="float32")
    x = ImageNetNormalize(name="imagenet_normalize", dtype="float32")(inp)
    if fit == "pad":
        pad = (_pad_split(input_size), _pad_split(input_size))
        x = ReflectPad2D(pad, name="reflect_pad", dtype="float32")(x)
    else:
        x = L.Resizing(input_size, input_size, interpolation="bilinear", name="resize_in", dtype="float32")(x)

    feats = build_encoder(x, layers=tuple(blocks), width=width, groups=groups)
    x = feats[-1]
    outs = []
    skips = [feats[3], feats[2], feats[1], feats[0], None]
    for i, (skip, f) in enumerate(zip(skips, decoder_filters)):
        x = _decoder_block(x, skip, f, f"decoder{i + 1}")
        outs.append(x)
    if hypercolumn:
        ups = [L.UpSampling2D(2 ** (4 - i), interpolation="bilinear", name=f"hypercolumn_up{i + 1}")(o)
               for i, o in enumerate(outs[:-1])]
        x = L.Concatenate(name="hypercolumn")(ups + [outs[-1]])
    x = L.Dropout(dropout, name="head_dropout")(x)
    x = _conv_bn_relu(x, max(8, decoder_filters[-1]), "head")

    def to_101(t, out_name):
        if fit == "pad":
            return L.Cropping2D(pad, name=out_name, dtype="float32")(t)
        return L.Resizing(IMG_SIZE, IMG_SIZE, interpolation="bilinear", name=out_name, dtype="float32")(t)

    outputs = {"mask": to_101(L.Conv2D(1, 1, name="mask_logits", dtype="float32")(x), "mask")}

    s = L.GlobalAveragePooling2D(name="salt_pool")(feats[-1])
    s = L.Dropout(dropout, name="salt_dropout")(s)
    s = L.Dense(salt_units or max(8, int(round(64 * width))), activation="relu", name="salt_hidden")(s)
    outputs["salt"] = L.Dense(1, name="salt", dtype="float32")(s)
    if edge:
        outputs["edge"] = to_101(L.Conv2D(1, 1, name="edge_logits", dtype="float32")(x), "edge")

    model = keras.Model(inp, outputs, name=name)
    if encoder_weights is not None:
        load_weights(model, encoder_weights)
    return model
