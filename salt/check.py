"""python -m salt.check DATA: run every data check and print a one-line summary."""
from __future__ import annotations

import argparse
from pathlib import Path

from salt.cli import run_cli
from salt.data import check_dataset


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m salt.check", description=__doc__.split(":", 1)[1].strip())
    ap.add_argument("data", type=Path, help="data folder in the Kaggle layout")
    args = ap.parse_args(argv)
    s = check_dataset(args.data)
    pct = 100.0 * s["empty_masks"] / max(s["train"], 1)
    sample = "sample_submission.csv matches" if (args.data / "sample_submission.csv").exists() \
        else "no sample_submission.csv"
    print(f"ok: {args.data}: {s['train']} train images ({s['empty_masks']} empty masks, {pct:.1f}%), "
          f"{s['test']} test images, {sample}")
    return 0


if __name__ == "__main__":
    run_cli(main)
