"""Layers that both networks put in front of their encoders (registered, so saved models reload)."""
from __future__ import annotations

import keras
from keras import layers, ops

# ImageNet statistics of RGB images in [0, 1] (torchvision, pretrainedmodels, keras.applications "torch")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="training")
class ImageNetNormalize(layers.Layer):
    """A grey (repeated to RGB) or RGB image in [0, 1] -> what an ImageNet encoder expects.

    mode "torch" (DenseNet, SE-ResNeXt): (x - mean) / std per channel; mode "tf" (Inception-ResNet-V2):
    x * 2 - 1. Equal to ``keras.applications.<net>.preprocess_input(x * 255)``.
    """

    def __init__(self, mode: str = "torch", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("torch", "tf"):
            raise ValueError(f"ImageNetNormalize: unknown mode {mode!r}")
        self.mode = mode

    def call(self, x):
        if x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        if self.mode == "tf":
            return x * 2.0 - 1.0
        mean = ops.cast(ops.convert_to_tensor(IMAGENET_MEAN), x.dtype)
        std = ops.cast(ops.convert_to_tensor(IMAGENET_STD), x.dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
