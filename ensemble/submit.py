"""Write the Kaggle submission from the models' test predictions and the tuned rules.

python -m ensemble.submit --data DATA --out OUT --pred NAME [--sample DATA/sample_submission.csv]
                          [--images DATA/test/images] [--chunk 2048]

Reads OUT/ensemble/tuning.json, OUT/segmenter/pred-NAME.npz (ids, prob, p_salt, fingerprint; folds,
n_models, wall_s where the predict command recorded them) and, when present, OUT/classifier/pred-NAME.npz
(ids, p_empty, fingerprint, ...); wall_s, the seconds a prediction took, is recorded in submit.json for
the report. Without a classifier prediction the segmenter-only rules are used.

The fold models are joined by their mean: each prediction file holds the mean of every fold model's
probabilities (pixel P(salt), image-head P(salt), P(empty)), and the tuned rules are applied once, to
that mean: probabilities are averaged before anything is decided, in place of the pixel majority vote
of the rules applied to each fold's own prediction that this module took before (issue 33 compares the
two on labelled images no model saw). Per-fold arrays in a file from before are not read. The tile
rules (vertical masks down the mosaic, OUT/mosaic.csv; constant images empty) do not depend on the
models and apply after the model rules, with every training tile labelled; they read the test images
(--images) and, for the mosaic, the training masks.

The pixel probabilities are read, the rules applied and the rows encoded ``--chunk`` images at a time, so
the memory does not grow with the number of images beyond the rows of the CSV. Writes OUT/submission.csv
atomically and validated (sample_submission row order when its ids are the predicted ids, else sorted
ids); on any error nothing is written. What was done is recorded in OUT/ensemble/submit.json.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.inputs import (HINT_TUNE, load_clf_pred_meta, load_mosaic, load_seg_pred_meta, npz_chunks,
                             read_json)
from ensemble.rules import TileContext, apply_rules, describe, submit_context
from salt.cli import UserError, run_cli
from salt.layout import Data, Out

CHUNK = 2048  # images read, decided and encoded at a time


class TileRules:
    """The TileContext of each chunk of test images, for the tuned tile rules (`context(ids)`, None when no
    tile rule is on): the vertical masks propagated from the labelled training tiles (once, for all ids)
    and whether each image of the chunk is constant (its PNG read when the chunk comes)."""

    def __init__(self, data_dir, out, params, ids, images_dir, seg_path):
        self.vertical, self.constant = bool(params.get("vertical")), bool(params.get("constant_empty"))
        self.folder = Path(images_dir) if images_dir else Data(data_dir).test_images
        self.seg_path = seg_path
        self.propagated, self.n_vertical, self.n_constant = None, 0, 0
        if self.vertical:
            from salt.data import load_train

            mosaic = load_mosaic(out, required=True)
            train = load_train(data_dir, cache_dir=Out(out).cache)
            self.propagated = submit_context(ids, None, train.ids, train.masks, mosaic).propagated
            self.n_vertical = len(self.propagated)

    @property
    def on(self) -> bool:
        return self.vertical or self.constant

    def context(self, ids) -> TileContext | None:
        from salt.mosaic import constant_images

        if not self.on:
            return None
        constant = None
        if self.constant:
            constant = constant_images(self._images(ids))
            self.n_constant += int(constant.sum())
        prop = None if self.propagated is None else {i: self.propagated[i] for i in ids if i in self.propagated}
        return TileContext(list(ids), constant, prop)

    def _images(self, ids) -> np.ndarray:
        from salt.data import read_image

        if not self.folder.is_dir():
            raise UserError(f"{self.folder}: folder not found; pass --images with the folder that was predicted")
        out = np.empty((len(ids), 101, 101), np.uint8)
        for k, i in enumerate(ids):
            path = self.folder / f"{i}.png"
            if not path.is_file():
                raise UserError(f"{self.folder}: no image for id {i} of {self.seg_path}; "
                                "pass --images with the folder that was predicted")
            out[k] = read_image(path)
        return out


def row_order(ids, sample) -> tuple[list[int], Path | None]:
    """The order of the submission's rows as indices into `ids`, and the sample submission it follows
    (None: sorted ids, where there is no sample or its ids are not exactly the predicted ones)."""
    n = len(ids)
    if sample.is_file():
        try:
            sample_ids = list(pd.read_csv(sample, dtype=str, keep_default_na=False)["id"])
        except Exception as e:
            raise UserError(f"{sample}: unreadable sample submission ({type(e).__name__})") from None
        if set(sample_ids) == set(ids) and len(sample_ids) == n:
            pos = {i: k for k, i in enumerate(ids)}
            return [pos[i] for i in sample_ids], sample
    return [int(k) for k in np.argsort(np.array(ids), kind="stable")], None


def write_rows(path, ids, order, encoded_rows) -> None:
    """Write the submission CSV (id,rle_mask) atomically, row by row: `encoded_rows` yields (index, rle)
    in prediction order; each row goes to a scratch file first, and is copied from there in `order`, so
    that no row waits in memory. The file is validated (salt.rle) before it is renamed into place."""
    from salt.io import atomic_path
    from salt.rle import validate_submission

    offsets = np.full(len(ids) + 1, -1, np.int64)
    with atomic_path(path) as tmp:
        scratch = tmp.with_name(tmp.name + ".rows")
        try:
            with open(scratch, "w+b") as rows:
                for k, rle in encoded_rows:
                    offsets[k] = rows.tell()
                    rows.write(f"{rle}\n".encode())
                if (offsets[:-1] < 0).any():
                    raise ValueError("a row was not encoded")
                with open(tmp, "w", newline="") as f:
                    w = csv.writer(f, lineterminator="\n")
                    w.writerow(["id", "rle_mask"])
                    for k in order:
                        rows.seek(offsets[k])
                        w.writerow([ids[k], rows.readline().decode().rstrip("\n")])
        finally:
            try:
                os.unlink(scratch)
            except FileNotFoundError:
                pass
        try:
            validate_submission(tmp, [ids[k] for k in order])
        except UserError as e:
            raise UserError(str(e).replace(str(tmp), str(path))) from None


def submit(data_dir, out_dir, pred, sample=None, images=None, chunk=CHUNK) -> dict:
    """Write OUT/submission.csv from prediction set `pred`; returns the record also written to
    OUT/ensemble/submit.json (path, n_images, n_empty, classifier used, params, combine: mean, ...)."""
    from salt.io import write_json
    from salt.rle import encode

    t0 = time.time()
    if chunk < 1:
        raise UserError(f"--chunk {chunk}: must be at least 1")
    out = Path(out_dir)
    lay = Out(out)
    tuning = read_json(lay.tuning_json, HINT_TUNE)
    tuning_fp = tuning.get("fingerprint")

    seg_path = lay.segmenter.prediction(pred)
    meta = load_seg_pred_meta(seg_path, tuning_fp)
    ids = meta["ids"]
    n = len(ids)
    if n == 0:
        raise UserError(f"{seg_path}: no ids")

    clf = load_clf_pred_meta(lay.classifier.prediction(pred), ids, tuning_fp)
    use_clf = clf is not None and tuning.get("classifier", False)
    params = tuning["params"] if use_clf else tuning["params_segmenter_only"]
    if use_clf and clf["folds"] and meta["folds"] and sorted(clf["folds"]) != sorted(meta["folds"]):
        raise UserError(f"{clf['path']}: folds {clf['folds']} differ from the segmenter's {meta['folds']} ({seg_path})")
    tiles = TileRules(data_dir, out, params, ids, images, seg_path)
    p_salt, p_empty = meta["p_salt"], clf["p_empty"] if use_clf else None
    order, sample_used = row_order(ids, Path(sample) if sample else Data(data_dir).sample_submission)

    n_empty = 0

    def encoded():
        nonlocal n_empty
        for lo, hi, prob in npz_chunks(seg_path, "prob", chunk):
            masks = apply_rules(prob, p_salt[lo:hi], None if p_empty is None else p_empty[lo:hi], params,
                                tiles.context(ids[lo:hi]))
            n_empty += int((~masks.reshape(hi - lo, -1).any(axis=1)).sum())
            for k in range(lo, hi):
                yield k, encode(masks[k - lo])

    path = lay.submission_csv
    write_rows(path, ids, order, encoded())

    models = [m for m in (meta, clf if use_clf else None) if m is not None]
    what = "; ".join(f"{name}: {m['n_models']} models" + (f" of folds {m['folds']}" if m["folds"] else "")
                     for name, m in zip(("segmenter", "classifier"), models) if m["n_models"])
    combine = {"combine": "mean", "folds": meta["folds"] or None,
               "combine_note": "rules applied to the mean of the fold models' probabilities"
                               + (f" ({what})" if what else "")}
    tile_counts = {}
    if tiles.on:
        tile_counts = {"vertical_tiles": tiles.n_vertical, "constant_images": tiles.n_constant}
    rec = {"path": str(path), "pred": pred, "n_images": n, "n_empty": n_empty,
           "classifier": str(clf["path"]) if use_clf else None,
           "mode": "segmenter + classifier" if use_clf else "segmenter only", **combine,
           "tile_rules": tile_counts, "order": f"sample_submission ({sample_used})" if sample_used else "sorted ids",
           "params": params, "fingerprint": tuning_fp, "wall_s": round(time.time() - t0, 3),
           "predict_wall_s": {"segmenter": meta["wall_s"], "classifier": clf["wall_s"] if clf else None}}
    write_json(lay.submit_json, rec)
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ensemble.submit", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="data folder (Kaggle layout)")
    ap.add_argument("--out", required=True, help="run folder (tuning.json, model predictions)")
    ap.add_argument("--pred", required=True, help="prediction set NAME (OUT/segmenter/pred-NAME.npz)")
    ap.add_argument("--sample", help="sample_submission.csv giving the row order (default DATA/sample_submission.csv)")
    ap.add_argument("--images", help="the folder that was predicted, read when a tile rule is on "
                                     "(default DATA/test/images)")
    ap.add_argument("--chunk", type=int, default=CHUNK, help=f"images decided at a time (default {CHUNK})")
    args = ap.parse_args(argv)
    rec = submit(args.data, args.out, args.pred, args.sample, args.images, args.chunk)
    if rec["classifier"] is None:
        print(f"note: no classifier prediction used (OUT/classifier/pred-{args.pred}.npz absent or not tuned); "
              "segmenter-only rules", file=sys.stderr)
    print(f"wrote {rec['path']}: {rec['n_images']} images, {rec['n_empty']} empty masks "
          f"({rec['mode']}; {rec['combine_note']}; {describe(rec['params'])}; {rec['wall_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    run_cli(main)
