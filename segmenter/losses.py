"""Segmentation losses (keras.ops only, registered so compiled .keras models reload) and the edge target.

Losses take y_true (N,H,W,1) in {0,1} and y_pred (N,H,W,1) LOGITS and return per-image losses (N,);
Keras averages them over the batch.
"""
from __future__ import annotations

import cv2
import keras
import numpy as np
from keras import ops


def _prep(y_true, y_pred):
    """Flatten to (N, P); compute in float32 at least (bfloat16/float16 logits are upcast)."""
    if str(y_pred.dtype) in ("float16", "bfloat16"):
        y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, y_pred.dtype)
    n = ops.shape(y_pred)[0]
    return ops.reshape(y_true, (n, -1)), ops.reshape(y_pred, (n, -1))


@keras.saving.register_keras_serializable(package="segmenter")
def bce_dice_loss(y_true, y_pred, smooth=1.0):
    """Per image: mean binary cross-entropy from logits + (1 - soft Dice of sigmoid(logits))."""
    t, z = _prep(y_true, y_pred)
    # stable BCE from logits: max(z, 0) - z*t + log(1 + exp(-|z|))
    # (sum / count rather than ops.mean: the torch backend's mean rounds float64 through float32)
    bce = ops.sum(ops.relu(z) - z * t + ops.log1p(ops.exp(-ops.abs(z))), axis=-1)
    bce = bce / ops.cast(ops.shape(z)[-1], z.dtype)
    p = ops.sigmoid(z)
    dice = (2.0 * ops.sum(p * t, axis=-1) + smooth) / (ops.sum(p, axis=-1) + ops.sum(t, axis=-1) + smooth)
    return bce + 1.0 - dice


def lovasz_grad(gt_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al. 2018).

    gt_sorted: (..., P) labels in {0,1} ordered by decreasing error. Works on a batch along the last axis.
    """
    gts = ops.sum(gt_sorted, axis=-1, keepdims=True)
    intersection = gts - ops.cumsum(gt_sorted, axis=-1)
    union = gts + ops.cumsum(1.0 - gt_sorted, axis=-1)
    jaccard = 1.0 - intersection / union
    return ops.concatenate([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)


def _lovasz(y_true, y_pred, penalty):
    """The Lovasz extension of the Jaccard loss per image at ``penalty(hinge errors)``, errors
    1 - logit * sign (sign = +1 salt / -1 background); ``penalty`` must increase."""
    t, z = _prep(y_true, y_pred)
    errors = 1.0 - z * (2.0 * t - 1.0)
    order = ops.argsort(-errors, axis=-1)  # descending
    errors_sorted = ops.take_along_axis(errors, order, axis=-1)
    gt_sorted = ops.take_along_axis(t, order, axis=-1)
    grad = ops.stop_gradient(lovasz_grad(gt_sorted))
    return ops.sum(penalty(errors_sorted) * grad, axis=-1)


@keras.saving.register_keras_serializable(package="segmenter")
def lovasz_hinge(y_true, y_pred):
    """Lovasz hinge per image (Berman et al. 2018), from logits: the Lovasz extension of the Jaccard loss
    evaluated at the hinge errors relu(1 - logit * sign), sign = +1 salt / -1 background. Returns (N,)."""
    return _lovasz(y_true, y_pred, ops.relu)


@keras.saving.register_keras_serializable(package="segmenter")
def lovasz_elu(y_true, y_pred):
    """The Lovasz hinge with elu(error) + 1 in place of relu(error): smooth, and never flat, so pixels
    already right by the margin keep a (shrinking) gradient instead of none. Returns (N,)."""
    return _lovasz(y_true, y_pred, lambda e: ops.elu(e) + 1.0)


def symmetric(loss, name: str):
    """(L(z, y) + L(-z, 1 - y)) / 2: the loss on salt and on background, so that an empty image trains
    every pixel, not only its worst one."""
    def both(y_true, y_pred):
        return 0.5 * (loss(y_true, y_pred) + loss(1.0 - y_true, -y_pred))
    both.__name__ = name
    return keras.saving.register_keras_serializable(package="segmenter")(both)


def salt_only(loss):
    """``loss`` on the images that hold salt, 0 on empty images (the image head's BCE carries those)."""
    def on_salt(y_true, y_pred):
        t, _ = _prep(y_true, y_pred)
        value = loss(y_true, y_pred)
        return value * ops.cast(ops.max(t, axis=-1) > 0, value.dtype)
    on_salt.__name__ = f"{loss.__name__}_salt_only"
    return keras.saving.register_keras_serializable(package="segmenter")(on_salt)


lovasz_symmetric = symmetric(lovasz_hinge, "lovasz_symmetric")
lovasz_elu_symmetric = symmetric(lovasz_elu, "lovasz_elu_symmetric")
# every Lovasz variant, each made once (Keras registers them by name): (elu, symmetric, salt only) -> loss
_ON_EVERY_IMAGE = {(False, False): lovasz_hinge, (False, True): lovasz_symmetric,
                   (True, False): lovasz_elu, (True, True): lovasz_elu_symmetric}
LOVASZ = {**{(elu, sym, False): loss for (elu, sym), loss in _ON_EVERY_IMAGE.items()},
          **{(elu, sym, True): salt_only(loss) for (elu, sym), loss in _ON_EVERY_IMAGE.items()}}
lovasz_hinge_salt_only = LOVASZ[(False, False, True)]


def mask_loss(name: str, symmetric: bool = False, salt_only_images: bool = False, elu: bool = False):
    """The mask loss of a round: ``bce_dice`` or ``lovasz`` (the hinge or its elu + 1 form; plain or
    symmetric; on every image or on the images with salt only)."""
    if name == "bce_dice":
        return bce_dice_loss
    if name != "lovasz":
        raise ValueError(f"unknown mask loss {name!r}")
    return LOVASZ[(bool(elu), bool(symmetric), bool(salt_only_images))]


def edge_target(masks, width=2):
    """Salt boundary band of boolean masks (N,H,W) -> bool (N,H,W).

    A pixel is on the edge if it lies within `width - width//2` pixels inside or `width//2` pixels outside
    the mask boundary (morphological gradient with 3x3 square steps: dilate minus erode). The image border
    is not a boundary. Empty and full masks have no edge.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == 2:
        return edge_target(masks[None], width)[0]
    k = np.ones((3, 3), np.uint8)
    n_out, n_in = width // 2, width - width // 2
    out = np.zeros_like(masks)
    for i, m in enumerate(masks.astype(np.uint8)):
        dil = cv2.dilate(m, k, iterations=n_out) if n_out else m
        ero = cv2.erode(m, k, iterations=n_in, borderType=cv2.BORDER_REPLICATE) if n_in else m
        out[i] = dil.astype(bool) & ~ero.astype(bool)
    return out
