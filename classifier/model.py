"""Empty-mask classifier: P(empty) for a 101x101 grey image (Keras 3, any backend).

Public API
----------
``build_classifier(backbone, input_size, encoder_weights, dropout) -> (model, encoder_init)``

The model takes a float32 ``(101, 101, 1)`` image scaled to [0, 1] and outputs ONE
float32 **logit** per image, layer/output name ``"empty"``; P(empty) =
``sigmoid(logit)``. Train with ``keras.losses.BinaryCrossentropy(from_logits=True)``
(numerically stable under bf16/fp16 mixed precision) and apply
``keras.ops.sigmoid`` (or ``scipy.special.expit``) to predictions.

Layers: Resizing(input_size, bilinear) -> training.layers.ImageNetNormalize(mode)
(grey -> 3 channels + the backbone's ImageNet normalisation) -> keras.applications backbone
(include_top=False, pooling="avg"), a nested sub-model named ``"backbone"`` so a
trainer can freeze it with ``model.get_layer("backbone").trainable = False`` ->
Dropout -> Dense(1, float32, name="empty").

Encoder weights (``encoder_weights``):
  * ``"imagenet"``: the notop file keras.applications itself uses, looked up in
    Keras' cache ``$KERAS_HOME/models`` (default ``~/.keras/models``, see
    ``training.weights``) under its exact Keras file name. A file found there is passed as ``weights=<path>`` to
    the keras.applications constructor (Keras' own loader, no hash check, so a
    re-saved or differently hashed copy is used as is instead of triggering a
    re-download that fails offline). If it is missing, Keras' ``get_file`` tries a
    download (skipped when ``SALT_OFFLINE=1``; socket timeout 15 s). If that fails,
    a prominent WARNING is printed once to stderr and the encoder starts random:
    ``encoder_init == "random"``.
  * ``"none"``: random initialisation, ``encoder_init == "random"``.
  * a PATH: weights file loaded by the constructor (``model.load_weights``
    formats: legacy ``.h5`` or ``.weights.h5``); ``encoder_init == "file:PATH"``.
    Missing or unloadable files raise ``salt.cli.UserError``.
"""
from __future__ import annotations

import os
import socket

import keras
from keras import layers

from salt.cli import UserError
from salt.data import IMG_SIZE
from segmenter import encoders
from training import weights
from training.layers import ImageNetNormalize

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"

# name -> constructor, preprocessing mode, default/min input size, Keras' notop
# ImageNet weights file (name, url, md5 as in keras/src/applications/*.py).
BACKBONES = {
    "densenet121": dict(
        constructor=keras.applications.DenseNet121,
        preprocess="torch",
        default_input_size=128,
        min_input_size=32,
        weights_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_url=_BASE + "densenet/",
        file_hash="30ee3e1110167f948a6b9946edeeb738",
    ),
    "inceptionresnetv2": dict(
        constructor=keras.applications.InceptionResNetV2,
        preprocess="tf",
        default_input_size=128,
        min_input_size=75,
        weights_file="inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_url=_BASE + "inception_resnet_v2/",
        file_hash="d19885ff4a710c122648d3b5c3b684e4",
    ),
}

# the registry's encoders that have ImageNet weights (segmenter.encoders): a pooling head on their last
# feature map; the weights come from the registry's loader
ENCODER_BACKBONES = {name: dict(preprocess=enc.normalize, default_input_size=128, min_input_size=32)
                     for name, enc in encoders.ENCODERS.items() if enc.pretrained}
BACKBONE_NAMES = [*BACKBONES, *ENCODER_BACKBONES]

BACKBONE_LAYER = "backbone"
OUTPUT_NAME = "empty"


def _download(spec: dict) -> str:
    """Keras' own get_file download into Keras' cache folder; raises on failure (offline)."""
    if os.environ.get("SALT_OFFLINE", "") not in ("", "0"):
        raise OSError("SALT_OFFLINE is set")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15 if old is None else old)
    try:
        return keras.utils.get_file(spec["weights_file"], spec["weights_url"] + spec["weights_file"],
                                    cache_subdir="models", file_hash=spec["file_hash"],
                                    cache_dir=str(weights.models_dir().parent))
    finally:
        socket.setdefaulttimeout(old)


def find_imagenet(backbone: str) -> str | None:
    """Keras' notop ImageNet file of the backbone: in Keras' cache folder, else downloaded by Keras;
    None after one warning when neither works."""
    spec = BACKBONES[backbone]
    path = weights.models_dir() / spec["weights_file"]
    if path.is_file():
        return str(path)
    try:
        return _download(spec)
    except Exception as e:  # offline: URL fetch failure, timeout, hash mismatch
        reason = (str(e).splitlines()[0] if str(e) else type(e).__name__)[:120]
        weights.warn_random(backbone, f"offline and not in {path} ({reason})",
                            f"Put {spec['weights_file']} in {path.parent} to use them.")
        return None


def resolve_encoder_weights(backbone: str, encoder_weights: str) -> tuple[str | None, str]:
    """(weights file for the backbone, encoder_init): keras.applications' own file, or the registry
    encoder's converted file (encoder_init "imagenet (efficientnet-lite0)")."""
    if backbone in ENCODER_BACKBONES:
        enc = encoders.get(backbone)
        return weights.resolve(encoder_weights, enc.find_imagenet, enc.init_label)
    return weights.resolve(encoder_weights, lambda: find_imagenet(backbone))


def registry_backbone(name: str, size: int, path: str | None, device: dict | None = None) -> keras.Model:
    """A registry encoder as a pooled backbone: its classification features (``pooled_args``), global
    average pooling; ImageNet weights loaded by the registry's loader where ``path`` is given."""
    enc = encoders.get(name)
    inp = keras.Input((size, size, 3), name="rgb")
    feats = enc.features(inp, device=device, **enc.pooled_args)
    net = keras.Model(inp, layers.GlobalAveragePooling2D(name="avg_pool")(feats[-1]), name=BACKBONE_LAYER)
    if path is not None:
        enc.load_weights(net, path)
    return net


def build_classifier(
    backbone: str = "densenet121",
    input_size: int | None = None,
    encoder_weights: str = "imagenet",
    dropout: float = 0.3,
    device: dict | None = None,
) -> tuple[keras.Model, str]:
    """Build the P(empty) classifier; returns (model, encoder_init).

    input_size None -> the backbone's default (BACKBONES[...]["default_input_size"]).
    Output "empty" is a float32 logit of shape (N, 1): P(empty) = sigmoid(logit).
    encoder_init is "imagenet", "random" or "file:PATH". device: the layers' choices for the device
    (training.devices.layer_choices), given to a registry encoder; None leaves its defaults.
    """
    if backbone not in BACKBONE_NAMES:
        raise UserError(f"unknown classifier backbone {backbone!r}; choose from {sorted(BACKBONE_NAMES)}")
    spec = BACKBONES.get(backbone) or ENCODER_BACKBONES[backbone]
    size = int(input_size or spec["default_input_size"])
    if size < spec["min_input_size"]:
        raise UserError(f"{backbone}: input_size {size} < minimum {spec['min_input_size']}")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"classifier dropout must be in [0, 1), got {dropout}")
    path, encoder_init = resolve_encoder_weights(backbone, encoder_weights)
    try:
        net = registry_backbone(backbone, size, path, device) if backbone in ENCODER_BACKBONES else spec["constructor"](
            include_top=False,
            weights=path,
            input_shape=(size, size, 3),
            pooling="avg",
            name=BACKBONE_LAYER,
        )
    except (OSError, ValueError, KeyError) as e:
        if path is None:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: cannot load {backbone} encoder weights ({msg[:200]})") from e

    inp = keras.Input((IMG_SIZE, IMG_SIZE, 1), name="image")
    x = layers.Resizing(size, size, interpolation="bilinear", name="resize")(inp)
    x = ImageNetNormalize(spec["preprocess"], name="preprocess")(x)
    x = net(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    out = layers.Dense(1, dtype="float32", name=OUTPUT_NAME)(x)
    model = keras.Model(inp, out, name=f"classifier_{backbone}")
    return model, encoder_init
