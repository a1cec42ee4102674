"""Paired image/mask augmentation (numpy + cv2): the same geometry for both, intensity on the image only.

Geometry: horizontal flip (p=0.5) and a small random scale and shift about the image centre
(cv2.warpAffine, BORDER_REFLECT_101; bilinear for the image, nearest for the mask). Never a vertical
flip: up and down mean something in seismic images. Intensity: contrast about the image mean and a
brightness offset, as a fraction of the range (255 for uint8, 1.0 for float images).
"""
from __future__ import annotations

import cv2
import numpy as np

# The augmentation both models train with (their presets name it): mild, since seismic texture
# and depth carry meaning.
AUGMENT = {"hflip": True, "shift": 0.08, "scale": 0.08, "brightness": 0.08, "contrast": 0.08}


def augment_pair(image, mask, rng, hflip=True, shift=0.1, scale=0.1, brightness=0.1, contrast=0.1):
    """Augment one (H,W) image (uint8 or float32) and its (H,W) mask; returns (image, mask) in the input dtypes.

    shift: max translation as a fraction of the size; scale: max relative zoom; brightness: max offset
    as a fraction of the range; contrast: max relative change of contrast. `rng` is a
    numpy Generator; the same seed gives the same result. The same number of random draws is made
    whatever the parameters.
    """
    image, mask = np.asarray(image), np.asarray(mask)
    if image.shape != mask.shape or image.ndim != 2:
        raise ValueError(f"need (H,W) image and mask of the same shape, got {image.shape} and {mask.shape}")
    h, w = image.shape
    u = rng.uniform(-1.0, 1.0, size=5)
    flip = rng.random() < 0.5
    img_dtype, mask_dtype = image.dtype, mask.dtype
    img = image.astype(np.float32)
    m = mask.astype(np.uint8)
    if hflip and flip:
        img, m = img[:, ::-1], m[:, ::-1]
    s = 1.0 + scale * u[0]
    tx, ty = shift * u[1] * w, shift * u[2] * h
    if s != 1.0 or tx != 0.0 or ty != 0.0:
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        M = np.array([[s, 0.0, cx - s * cx + tx], [0.0, s, cy - s * cy + ty]], dtype=np.float64)
        img = cv2.warpAffine(np.ascontiguousarray(img), M, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
        m = cv2.warpAffine(np.ascontiguousarray(m), M, (w, h), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_REFLECT_101)
    span = 255.0 if img_dtype == np.uint8 else 1.0
    c, b = 1.0 + contrast * u[3], brightness * u[4] * span
    if c != 1.0 or b != 0.0:
        mean = float(img.mean())
        img = (img - mean) * c + mean + b
    if img_dtype == np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    else:
        img = np.ascontiguousarray(img).astype(img_dtype, copy=False)
    m = np.ascontiguousarray(m).astype(mask_dtype) if mask_dtype != bool else np.ascontiguousarray(m) != 0
    return img, m


def augment_batch(images, masks, rng, **params):
    """augment_pair over (N,H,W) images and masks; returns new arrays of the input dtypes."""
    images, masks = np.asarray(images), np.asarray(masks)
    out_i, out_m = np.empty_like(images), np.empty_like(masks)
    for n in range(len(images)):
        out_i[n], out_m[n] = augment_pair(images[n], masks[n], rng, **params)
    return out_i, out_m
