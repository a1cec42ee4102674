"""python -m salt.check DATA [--test TEST] [--cache DIR]: run every input check and print a one-line summary.

The checks (salt.data): the train set in full (folders, train.csv, depths.csv, ids of images, masks and
CSV agreeing, every PNG complete and 101x101, masks binary and equal to their RLE), every test image (PNG,
101x101), no test id that is also a train id, and sample_submission.csv against the test images where
the test images are DATA's own. `make train-*` and `make submit` run it before anything else, so a bad
file stops them in seconds with one `error:` line that names it, not hours later.

With --cache (the runs' OUT/cache), the checked arrays are cached as the trainers cache them: an unchanged
folder is checked once, and the trainers then load it from the cache.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from salt.cli import run_cli
from salt.data import DataError, _need_dir, check_sample_submission, load_images, load_train
from salt.layout import Data


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_inputs(data_dir, test_dir=None, cache_dir=None) -> dict:
    """Every check on DATA and the test images TEST (default DATA/test/images); DataError (one line naming
    the file) on the first problem. Returns {"train", "test", "empty_masks", "sample"}, "sample" one of
    "matches", "absent", "not compared" (TEST is not DATA's own test folder)."""
    data_dir = _need_dir(data_dir)
    own_test = Data(data_dir).test_images
    test_dir = own_test if test_dir is None else Path(test_dir)
    train = load_train(data_dir, cache_dir=cache_dir)
    test_ids, _ = load_images(test_dir, cache_dir=cache_dir)
    train_ids = set(train.ids)
    overlap = sorted(i for i in test_ids if i in train_ids)
    if overlap:
        raise DataError(f"{test_dir / (overlap[0] + '.png')}: id {overlap[0]} is also a train id")
    sample_path = Data(data_dir).sample_submission
    if not _same(test_dir, own_test):
        sample = "not compared"
    elif not sample_path.exists():
        sample = "absent"
    else:
        check_sample_submission(sample_path, test_ids)
        sample = "matches"
    empty = int((~train.masks.reshape(len(train), -1).any(axis=1)).sum())
    return {"train": len(train), "test": len(test_ids), "empty_masks": empty, "sample": sample}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m salt.check",
                                 description="Run every input check on a Kaggle-layout folder; one line.")
    ap.add_argument("data", type=Path, help="data folder in the Kaggle layout")
    ap.add_argument("--test", type=Path, help="the test images to check (default DATA/test/images)")
    ap.add_argument("--cache", type=Path, help="cache folder of the checked arrays (the runs' OUT/cache)")
    args = ap.parse_args(argv)
    s = check_inputs(args.data, args.test, args.cache)
    pct = 100.0 * s["empty_masks"] / max(s["train"], 1)
    sample = {"matches": "sample_submission.csv matches", "absent": "no sample_submission.csv",
              "not compared": "sample_submission.csv not compared (other test images)"}[s["sample"]]
    test = "" if args.test is None else f" in {args.test}"
    print(f"ok: {args.data}: {s['train']} train images ({s['empty_masks']} empty masks, {pct:.1f}%), "
          f"{s['test']} test images{test}, {sample}")
    return 0


if __name__ == "__main__":
    run_cli(main)
