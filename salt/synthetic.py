"""Synthetic data in the Kaggle layout: seismic-like layered textures with salt bodies.

python -m salt.synthetic OUT --train 200 --test 50 [--seed 0]

Sediment is a stack of warped, dipping horizontal layers plus noise; salt bodies are smooth blobs or
bodies that run down to the bottom edge, filled with a chaotic, weakly layered and slightly brighter
texture, so a small network can learn them. Like the real labels: about 40% of masks are empty, none is
all salt, non-empty masks are 16-bit 0/65535 PNGs and empty ones 8-bit zeros; images are 8-bit with three
equal channels.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from salt.cli import UserError, run_cli
from salt.data import IMG_SIZE as SIZE
from salt.layout import Data
from salt.rle import encode

EMPTY_FRACTION = 0.4
_Y, _X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def _smooth_noise(rng, sigma) -> np.ndarray:
    """Gaussian-blurred white noise scaled to unit std, float32 (SIZE, SIZE)."""
    n = rng.standard_normal((SIZE, SIZE)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return n / (n.std() + 1e-6)


def _sediment(rng) -> np.ndarray:
    """Layered texture: warped, dipping sinusoidal layers of a few periods plus noise."""
    warp = np.zeros(SIZE, np.float32)
    for _ in range(3):
        warp += rng.uniform(0, 6) * np.sin(2 * np.pi * _X[0] / rng.uniform(30, 200) + rng.uniform(0, 2 * np.pi))
    dip = rng.uniform(-0.3, 0.3)
    depth = _Y + warp[None, :] + dip * _X + 2.0 * _smooth_noise(rng, 6)
    img = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(2):
        period = rng.uniform(4, 14)
        img += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * depth / period + rng.uniform(0, 2 * np.pi))
    return img + 0.25 * rng.standard_normal((SIZE, SIZE)).astype(np.float32)


def _salt_texture(rng) -> np.ndarray:
    """Chaotic, weakly layered, slightly brighter texture."""
    tex = 0.6 * _smooth_noise(rng, rng.uniform(1.0, 2.5)) + 0.3 * _smooth_noise(rng, 5)
    return tex + rng.uniform(0.5, 0.9) + 0.25 * rng.standard_normal((SIZE, SIZE)).astype(np.float32)


def _blob_mask(rng) -> np.ndarray:
    """Smooth blob(s): thresholded smooth noise plus a bump, coverage roughly 2%..85%."""
    field = _smooth_noise(rng, rng.uniform(7, 14))
    cy, cx = rng.uniform(10, 90, size=2)
    r = rng.uniform(15, 60)
    field += 1.5 * np.exp(-((_Y - cy) ** 2 + (_X - cx) ** 2) / (2 * r * r))
    q = rng.uniform(0.15, 0.98)
    return field > np.quantile(field, q)


def _bottom_mask(rng) -> np.ndarray:
    """A salt body whose top is a smooth curve and which runs down to the bottom edge."""
    top = rng.uniform(15, 90) + np.zeros(SIZE, np.float32)
    for _ in range(2):
        top += rng.uniform(0, 15) * np.sin(2 * np.pi * _X[0] / rng.uniform(40, 250) + rng.uniform(0, 2 * np.pi))
    mask = _Y >= top[None, :]
    if rng.random() < 0.3:  # a body with flanks: only part of the width
        a, b = sorted(rng.uniform(0, SIZE, size=2))
        if b - a > 15:
            mask &= (_X >= a) & (_X <= b)
    return mask


def make_pair(rng, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One (uint8 image, bool mask) pair; kind is "empty", "blob" or "bottom"."""
    for _ in range(100):
        if kind == "empty":
            mask = np.zeros((SIZE, SIZE), bool)
        else:
            mask = _blob_mask(rng) if kind == "blob" else _bottom_mask(rng)
        if kind == "empty" or (mask.any() and not mask.all()):
            break
    else:  # practically unreachable: fall back to a fixed body
        mask = _Y >= 60
    img = _sediment(rng)
    if mask.any():
        soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)
        img = (1 - soft) * img + soft * _salt_texture(rng)
    img = img * rng.uniform(25, 40) + rng.uniform(100, 140)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def _new_ids(rng, n, taken: set) -> list[str]:
    out = []
    while len(out) < n:
        i = rng.bytes(5).hex()
        if i not in taken:
            taken.add(i)
            out.append(i)
    return out


def _write_image(path: Path, img: np.ndarray) -> None:
    cv2.imwrite(str(path), np.repeat(img[:, :, None], 3, axis=2))


def make_dataset(out_dir, n_train=200, n_test=50, seed=0) -> Path:
    """Write a Kaggle-layout synthetic data set into out_dir (created; must not exist or be empty).

    The folder appears complete or not at all (written next to it, then renamed). Returns its path.
    """
    out = Path(out_dir)
    if n_train < 1 or n_test < 0:
        raise UserError(f"need at least 1 train image and 0 or more test images, got {n_train} and {n_test}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists and is not an empty folder")
    rng = np.random.default_rng(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        data = Data(tmp)
        for d in (data.train_images, data.train_masks, data.test_images):
            d.mkdir(parents=True)
        taken: set = set()
        train_ids, test_ids = _new_ids(rng, n_train, taken), _new_ids(rng, n_test, taken)
        n_empty = int(round(EMPTY_FRACTION * n_train))
        n_bottom = (n_train - n_empty) // 2
        kinds = np.array(["empty"] * n_empty + ["bottom"] * n_bottom + ["blob"] * (n_train - n_empty - n_bottom))
        kinds = kinds[rng.permutation(n_train)]
        rles = []
        for i, kind in zip(train_ids, kinds):
            img, mask = make_pair(rng, kind)
            _write_image(data.train_images / f"{i}.png", img)
            m = (mask.astype(np.uint16) * 65535) if mask.any() else np.zeros((SIZE, SIZE), np.uint8)
            cv2.imwrite(str(data.train_masks / f"{i}.png"), m)
            rles.append(encode(mask))
        for i in test_ids:
            img, _ = make_pair(rng, str(rng.choice(["empty", "blob", "bottom"], p=[0.4, 0.3, 0.3])))
            _write_image(data.test_images / f"{i}.png", img)
        pd.DataFrame({"id": train_ids, "rle_mask": rles}).to_csv(data.train_csv, index=False)
        all_ids = train_ids + test_ids
        z = rng.integers(50, 960, size=len(all_ids))
        pd.DataFrame({"id": all_ids, "z": z}).to_csv(data.depths_csv, index=False)
        pd.DataFrame({"id": test_ids, "rle_mask": ["1 1"] * len(test_ids)}).to_csv(
            data.sample_submission, index=False)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m salt.synthetic", description="Write a synthetic Kaggle-layout data set.")
    ap.add_argument("out", type=Path, help="output folder (must not exist, or be empty)")
    ap.add_argument("--train", type=int, default=200, help="number of training images (default 200)")
    ap.add_argument("--test", type=int, default=50, help="number of test images (default 50)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = make_dataset(args.out, args.train, args.test, args.seed)
    print(f"wrote {out}: {args.train} train, {args.test} test images (seed {args.seed})")
    return 0


if __name__ == "__main__":
    run_cli(main)
