"""Write the Kaggle submission from the models' test predictions and the tuned rules.

python -m ensemble.submit --data DATA --out OUT --pred NAME [--sample DATA/sample_submission.csv]
                          [--images DATA/test/images]

Reads OUT/ensemble/tuning.json, OUT/segmenter/pred-NAME.npz (ids, prob, p_salt, fingerprint, and per
fold: folds, prob_fold{k}, p_salt_fold{k}) and, when present, OUT/classifier/pred-NAME.npz (ids, p_empty,
fingerprint; folds, p_empty_fold{k}); either may hold wall_s, the seconds its prediction took (recorded
in submit.json for the report). Without a classifier prediction the segmenter-only rules are used.

The rules were tuned on out-of-fold predictions, each made by one fold's model(s), so they are applied
to each fold's own test prediction, the same kind of prediction, and the folds are then combined by a
pixel-wise majority vote (salt where more than half of the folds say so). When a file has no per-fold
arrays, the rules are applied to the mean of the folds instead. The tile rules (vertical masks down the
mosaic, OUT/mosaic.csv; constant images empty) do not depend on the models and apply once, after the
vote, with every training tile labelled; they read the test images (--images) and, for the mosaic, the
training masks. What was done is recorded in OUT/ensemble/submit.json.

Writes OUT/submission.csv atomically and validated (sample_submission row order when its ids are the
predicted ids, else sorted ids); on any error nothing is written.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.inputs import HINT_TUNE, load_clf_pred_meta, load_mosaic, load_seg_pred_meta, read_array, read_json
from ensemble.tune import apply_rules, apply_rules_by_fold, describe, submit_context
from salt.cli import UserError, run_cli


def _seg_arrays(path, suffix, n):
    """(prob (n,H,W), p_salt (n,)) of a segmenter prediction file: the fold mean (suffix "") or one fold's."""
    prob, p_salt = read_array(path, f"prob{suffix}"), read_array(path, f"p_salt{suffix}")
    if prob.ndim != 3 or len(prob) != n or p_salt.shape != (n,):
        raise UserError(f"{path}: inconsistent shapes (ids {n}, prob{suffix} {prob.shape}, "
                        f"p_salt{suffix} {p_salt.shape})")
    return prob, p_salt


def tile_context(data_dir, out, params, ids, images_dir, seg_path):
    """The TileContext the tuned tile rules need for the test `ids` (None when no tile rule is on)."""
    from salt.data import load_images, load_train

    if not (params.get("vertical") or params.get("constant_empty")):
        return None
    folder = Path(images_dir) if images_dir else Path(data_dir) / "test" / "images"
    img_ids, images = load_images(folder, cache_dir=out / "cache")
    pos = {i: k for k, i in enumerate(img_ids)}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise UserError(f"{folder}: no image for id {missing[0]} of {seg_path} ({len(missing)} missing); "
                        "pass --images with the folder that was predicted")
    images = images[[pos[i] for i in ids]]
    train_ids, train_masks, mosaic = None, None, None
    if params.get("vertical"):
        mosaic = load_mosaic(out, required=True)
        train = load_train(data_dir, cache_dir=out / "cache")
        train_ids, train_masks = train.ids, train.masks
    return submit_context(ids, images, train_ids, train_masks, mosaic)


def submit(data_dir, out_dir, pred, sample=None, images=None) -> dict:
    """Write OUT/submission.csv from prediction set `pred`; returns the record also written to
    OUT/ensemble/submit.json (path, n_images, n_empty, classifier used, params, combine: vote|mean, ...)."""
    from salt.io import write_json
    from salt.rle import write_submission

    t0 = time.time()
    out = Path(out_dir)
    tuning = read_json(out / "ensemble" / "tuning.json", HINT_TUNE)
    tuning_fp = tuning.get("fingerprint")

    seg_path = out / "segmenter" / f"pred-{pred}.npz"
    meta = load_seg_pred_meta(seg_path, tuning_fp)
    ids = meta["ids"]
    n = len(ids)
    if n == 0:
        raise UserError(f"{seg_path}: no ids")

    clf = load_clf_pred_meta(out / "classifier" / f"pred-{pred}.npz", ids, tuning_fp)
    use_clf = clf is not None and tuning.get("classifier", False)
    params = tuning["params"] if use_clf else tuning["params_segmenter_only"]
    context = tile_context(data_dir, out, params, ids, images, seg_path)

    folds, why_not = meta["folds"], meta["missing"]
    if folds and use_clf:
        if not clf["folds"]:
            folds, why_not = [], clf["missing"]
        elif sorted(clf["folds"]) != sorted(folds):
            raise UserError(f"{clf['path']}: folds {clf['folds']} differ from the segmenter's {folds} ({seg_path})")
    if folds:
        def fold_preds():  # one fold's arrays at a time
            for k in folds:
                yield (*_seg_arrays(seg_path, f"_fold{k}", n), clf["by_fold"][k] if use_clf else None)

        masks = apply_rules_by_fold(fold_preds(), params, context)
        combine = {"combine": "vote", "folds": folds,
                   "combine_note": f"majority vote of the rules applied to each of the {len(folds)} folds' predictions"}
    else:
        prob, p_salt = _seg_arrays(seg_path, "", n)
        masks = apply_rules(prob, p_salt, clf["p_empty"] if use_clf else None, params, context)
        del prob
        combine = {"combine": "mean", "folds": None,
                   "combine_note": f"rules applied to the mean of the folds ({why_not})"}

    sample = Path(sample) if sample else Path(data_dir) / "sample_submission.csv"
    if sample.is_file():
        try:
            sample_ids = list(pd.read_csv(sample, dtype=str, keep_default_na=False)["id"])
        except Exception as e:
            raise UserError(f"{sample}: unreadable sample submission ({type(e).__name__})") from None
        use_sample = set(sample_ids) == set(ids) and len(sample_ids) == n
    else:
        use_sample = False
    tiles = {}
    if context is not None:
        tiles = {"vertical_tiles": len(context.propagated) if params.get("vertical") else 0,
                 "constant_images": int(context.constant.sum()) if params.get("constant_empty") else 0}
    if not use_sample:  # not the sample's image folder: sorted ids
        order = np.argsort(np.array(ids), kind="stable")
        ids, masks = [ids[i] for i in order], masks[order]
    path = out / "submission.csv"
    write_submission(path, ids, masks, sample_submission=sample if use_sample else None)

    n_empty = int((masks.reshape(n, -1).sum(axis=1) == 0).sum())
    rec = {"path": str(path), "pred": pred, "n_images": n, "n_empty": n_empty,
           "classifier": str(clf["path"]) if use_clf else None,
           "mode": "segmenter + classifier" if use_clf else "segmenter only", **combine,
           "tile_rules": tiles, "order": f"sample_submission ({sample})" if use_sample else "sorted ids",
           "params": params, "fingerprint": tuning_fp, "wall_s": round(time.time() - t0, 3),
           "predict_wall_s": {"segmenter": meta["wall_s"], "classifier": clf["wall_s"] if clf else None}}
    write_json(out / "ensemble" / "submit.json", rec)
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ensemble.submit", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="data folder (Kaggle layout)")
    ap.add_argument("--out", required=True, help="run folder (tuning.json, model predictions)")
    ap.add_argument("--pred", required=True, help="prediction set NAME (OUT/segmenter/pred-NAME.npz)")
    ap.add_argument("--sample", help="sample_submission.csv giving the row order (default DATA/sample_submission.csv)")
    ap.add_argument("--images", help="the folder that was predicted, read when a tile rule is on "
                                     "(default DATA/test/images)")
    args = ap.parse_args(argv)
    rec = submit(args.data, args.out, args.pred, args.sample, args.images)
    if rec["classifier"] is None:
        print(f"note: no classifier prediction used (OUT/classifier/pred-{args.pred}.npz absent or not tuned); "
              "segmenter-only rules", file=sys.stderr)
    print(f"wrote {rec['path']}: {rec['n_images']} images, {rec['n_empty']} empty masks "
          f"({rec['mode']}; {rec['combine_note']}; {describe(rec['params'])})")
    return 0


if __name__ == "__main__":
    run_cli(main)
