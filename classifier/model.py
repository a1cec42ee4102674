"""Empty-mask classifier: P(empty) for a 101x101 grey image (Keras 3, any backend).

Public API
----------
``build_classifier(backbone, input_size, encoder_weights, dropout) -> (model, encoder_init)``

The model takes a float32 ``(101, 101, 1)`` image scaled to [0, 1] and outputs ONE
float32 **logit** per image, layer/output name ``"empty"``; P(empty) =
``sigmoid(logit)``. Train with ``keras.losses.BinaryCrossentropy(from_logits=True)``
(numerically stable under bf16/fp16 mixed precision) and apply
``keras.ops.sigmoid`` (or ``scipy.special.expit``) to predictions.

Layers: Resizing(input_size, bilinear) -> BackbonePreprocess(mode) (grey -> 3
channels + the backbone's ImageNet normalisation) -> keras.applications backbone
(include_top=False, pooling="avg"), a nested sub-model named ``"backbone"`` so a
trainer can freeze it with ``model.get_layer("backbone").trainable = False`` ->
Dropout -> Dense(1, float32, name="empty").

Encoder weights (``encoder_weights``):
  * ``"imagenet"``: the notop file keras.applications itself uses, looked up in
    Keras' cache ``$KERAS_HOME/models`` (default ``~/.keras/models``) under its
    exact Keras file name. A file found there is passed as ``weights=<path>`` to
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
import sys

import keras
from keras import layers, ops

from salt.cli import UserError

IMG_SIZE = 101
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

BACKBONE_LAYER = "backbone"
OUTPUT_NAME = "empty"

# ImageNet statistics of keras.applications' "torch" preprocessing mode (RGB order).
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

_warned = set()  # backbones whose "random init" warning was already printed


def backbone_layer_name(backbone: str | None = None) -> str:
    """Name of the nested backbone sub-model (same for every backbone)."""
    return BACKBONE_LAYER


@keras.saving.register_keras_serializable(package="salt")
class BackbonePreprocess(layers.Layer):
    """Backbone preprocessing for images already scaled to [0, 1].

    A 1-channel input is repeated to 3 channels first. Equivalent to
    ``keras.applications.<net>.preprocess_input(x * 255)``:
    mode "torch" (DenseNet): ``(x - mean) / std`` per channel;
    mode "tf" (Inception-ResNet-V2): ``x * 2 - 1``.
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("torch", "tf"):
            raise ValueError(f"BackbonePreprocess: unknown mode {mode!r}")
        self.mode = mode

    def call(self, x):
        if x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        if self.mode == "tf":
            return x * 2.0 - 1.0
        mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=x.dtype)
        std = ops.convert_to_tensor(_TORCH_STD, dtype=x.dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def keras_cache_dir() -> str:
    """Keras' cache folder as get_file uses it: $KERAS_HOME, else ~/.keras.

    Reads the env var at call time (Keras itself reads it once at import).
    """
    if "KERAS_HOME" in os.environ:
        return os.path.expanduser(os.environ["KERAS_HOME"])
    from keras.src.backend import config

    return os.path.expanduser(config.keras_home())


def _warn_random(backbone: str, path: str, reason: str) -> None:
    """Print the 'random initialisation' warning once per backbone per process."""
    if backbone in _warned:
        return
    _warned.add(backbone)
    name = os.path.basename(path)
    bar = "!" * 78
    lines = [
        bar,
        f"!! WARNING: ImageNet weights for {backbone} could not be loaded",
        f"!!   (offline and not in {path}; {reason}).",
        "!! Training the classifier encoder from RANDOM initialisation.",
        f"!! Put {name} in {os.path.dirname(path)} to use them.",
        bar,
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _download(spec: dict, cache_dir: str) -> str:
    """Keras' own get_file download into cache_dir/models; raises on failure."""
    if os.environ.get("SALT_OFFLINE", "") not in ("", "0"):
        raise OSError("SALT_OFFLINE is set")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15 if old is None else old)
    try:
        return keras.utils.get_file(
            spec["weights_file"],
            spec["weights_url"] + spec["weights_file"],
            cache_subdir="models",
            file_hash=spec["file_hash"],
            cache_dir=cache_dir,
        )
    finally:
        socket.setdefaulttimeout(old)


def resolve_encoder_weights(backbone: str, encoder_weights: str) -> tuple[str | None, str]:
    """Return (weights argument for the keras.applications constructor, encoder_init)."""
    spec = BACKBONES[backbone]
    if encoder_weights in (None, "none"):
        return None, "random"
    if encoder_weights == "imagenet":
        cache_dir = keras_cache_dir()
        path = os.path.join(cache_dir, "models", spec["weights_file"])
        if os.path.isfile(path):
            return path, "imagenet"
        try:
            return _download(spec, cache_dir), "imagenet"
        except Exception as e:  # offline: URL fetch failure, timeout, hash mismatch
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            _warn_random(backbone, path, reason[:120])
            return None, "random"
    path = os.fspath(encoder_weights)
    if not os.path.isfile(path):
        raise UserError(f"{path}: encoder weights file not found (use 'imagenet', 'none' or a file)")
    return path, f"file:{path}"


def build_classifier(
    backbone: str = "densenet121",
    input_size: int | None = None,
    encoder_weights: str = "imagenet",
    dropout: float = 0.3,
) -> tuple[keras.Model, str]:
    """Build the P(empty) classifier; returns (model, encoder_init).

    input_size None -> the backbone's default (BACKBONES[...]["default_input_size"]).
    Output "empty" is a float32 logit of shape (N, 1): P(empty) = sigmoid(logit).
    encoder_init is "imagenet", "random" or "file:PATH".
    """
    if backbone not in BACKBONES:
        raise UserError(f"unknown classifier backbone {backbone!r}; choose from {sorted(BACKBONES)}")
    spec = BACKBONES[backbone]
    size = int(input_size or spec["default_input_size"])
    if size < spec["min_input_size"]:
        raise UserError(f"{backbone}: input_size {size} < minimum {spec['min_input_size']}")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"classifier dropout must be in [0, 1), got {dropout}")
    weights, encoder_init = resolve_encoder_weights(backbone, encoder_weights)
    try:
        net = spec["constructor"](
            include_top=False,
            weights=weights,
            input_shape=(size, size, 3),
            pooling="avg",
            name=BACKBONE_LAYER,
        )
    except (OSError, ValueError, KeyError) as e:
        if weights is None:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{weights}: cannot load {backbone} encoder weights ({msg[:200]})") from e

    inp = keras.Input((IMG_SIZE, IMG_SIZE, 1), name="image")
    x = layers.Resizing(size, size, interpolation="bilinear", name="resize")(inp)
    x = BackbonePreprocess(spec["preprocess"], name="preprocess")(x)
    x = net(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    out = layers.Dense(1, dtype="float32", name=OUTPUT_NAME)(x)
    model = keras.Model(inp, out, name=f"classifier_{backbone}")
    return model, encoder_init
