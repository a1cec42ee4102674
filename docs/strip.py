"""The README's picture: a strip of test images with the masks a real run submitted for them.

    .venv/bin/python docs/strip.py --data ../shared/tgs --out out/cpu9 --png docs/test-strip.png

Reads OUT/submission.csv (what `make submit` wrote) and the images of DATA/test/images; draws the first
test images, in id order, whose submitted mask covers at least 5% of the image, then the first ones
submitted empty, each outlined in the report's prediction colour. Nothing is trained or predicted here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from ensemble.figures import tiles_figure  # noqa: E402
from salt.data import read_image  # noqa: E402
from salt.rle import read_rle_csv  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="Kaggle-layout folder with test/images")
    ap.add_argument("--out", type=Path, required=True, help="a run's OUT, with submission.csv")
    ap.add_argument("--png", type=Path, default=Path(__file__).with_name("test-strip.png"))
    ap.add_argument("--salt", type=int, default=6, help="images with a submitted mask")
    ap.add_argument("--empty", type=int, default=2, help="images submitted empty")
    args = ap.parse_args(argv)
    masks = read_rle_csv(args.out / "submission.csv")
    ids = sorted(masks)
    salt = [i for i in ids if masks[i].mean() >= 0.05][:args.salt]
    empty = [i for i in ids if not masks[i].any()][:args.empty]
    chosen = salt + empty
    images = np.stack([read_image(args.data / "test" / "images" / f"{i}.png") for i in chosen])
    pred = np.stack([masks[i] for i in chosen])
    titles = {k: f"{i[:8]}: {100 * pred[k].mean():.0f}% salt" for k, i in enumerate(chosen)}
    fig = tiles_figure(images, np.zeros_like(pred), pred, [("", list(range(len(chosen))))], titles,
                       ncols=len(chosen), tile_in=1.6)
    fig.savefig(args.png, dpi=80)
    print(f"wrote {args.png}: {len(salt)} test images with salt submitted, {len(empty)} submitted empty "
          f"({args.out / 'submission.csv'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
