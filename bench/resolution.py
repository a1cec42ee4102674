"""What a network's resolution alone costs: `python -m bench.resolution --data DATA --sizes 32 48 64 80`.

A segmenter with ``fit="resize"`` sees the 101x101 image resized to N x N and its mask logits are resized
bilinearly back to 101 x 101. Even a perfect network at N x N can give back no more than the true mask
area-averaged to N x N: this takes every training mask there and back (area down, bilinear up, threshold
0.5) and scores it with the competition metric against the original, the ceiling at each size.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from salt.cli import UserError, run_cli
from salt.data import IMG_SIZE, load_train
from salt.metric import competition_score


def round_trip(masks: np.ndarray, n: int) -> np.ndarray:
    """Boolean masks (N,101,101) -> area-averaged to n x n -> bilinear to 101 x 101 -> > 0.5."""
    out = np.empty(masks.shape, bool)
    for i, m in enumerate(masks.astype(np.float32)):
        small = cv2.resize(m, (n, n), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(small, (IMG_SIZE, IMG_SIZE), interpolation=cv2.INTER_LINEAR) > 0.5
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="Kaggle-layout data folder")
    p.add_argument("--sizes", nargs="+", type=int, default=[32, 40, 48, 56, 64, 80, 112])
    args = p.parse_args(argv)
    if min(args.sizes) < 1:
        raise UserError(f"--sizes {' '.join(map(str, args.sizes))}: every size must be 1 or more")
    masks = load_train(args.data).masks.astype(bool)
    print(f"{len(masks)} training masks, each resized to N x N and back (area down, bilinear up, > 0.5)")
    print("| N | competition score of the round trip |\n| --- | --- |")
    for n in args.sizes:
        print(f"| {n} | {competition_score(masks, round_trip(masks, n)):.4f} |")


if __name__ == "__main__":
    run_cli(main)
