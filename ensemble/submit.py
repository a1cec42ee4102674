"""Write the Kaggle submission from the models' test predictions and the tuned rules.

python -m ensemble.submit --data DATA --out OUT --pred NAME [--sample DATA/sample_submission.csv]

Reads OUT/ensemble/tuning.json, OUT/segmenter/pred-NAME.npz (ids, prob, p_salt, fingerprint) and, when
present, OUT/classifier/pred-NAME.npz (ids, p_empty, fingerprint).
Without a classifier prediction the segmenter-only rules are used (recorded in OUT/ensemble/submit.json).
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

from salt.cli import UserError, run_cli
from ensemble.inputs import HINT_PREDICT, HINT_TUNE, align, check_pred_fingerprint, load_npz, pred_fingerprint, read_json
from ensemble.tune import apply_rules, describe


def load_classifier_pred(out, name, ids, tuning_fp):
    """P(empty) (N,) aligned on `ids` from OUT/classifier/pred-NAME.npz, or (None, None) if absent."""
    path = out / "classifier" / f"pred-{name}.npz"
    if not path.is_file():
        return None, None
    z = load_npz(path, ["ids", "p_empty", "fingerprint"], HINT_PREDICT["classifier"])
    check_pred_fingerprint(path, pred_fingerprint(path, z), tuning_fp)
    cids, p = [str(i) for i in z["ids"]], np.asarray(z["p_empty"], dtype=np.float64)
    if p.shape != (len(cids),) or not np.all(np.isfinite(p)):
        raise UserError(f"{path}: p_empty must be one finite value per id")
    extra = set(cids) - set(ids)
    if extra:
        raise UserError(f"{path}: id {sorted(extra)[0]} is not in the segmenter's prediction ({len(extra)} extra)")
    return p[align(path, cids, ids)], path


def submit(data_dir, out_dir, pred, sample=None) -> dict:
    """Write OUT/submission.csv from prediction set `pred`; returns the record also written to
    OUT/ensemble/submit.json (path, n_images, n_empty, classifier used, params, wall_s)."""
    from salt.io import write_json
    from salt.rle import write_submission

    t0 = time.time()
    out = Path(out_dir)
    tuning = read_json(out / "ensemble" / "tuning.json", HINT_TUNE)
    tuning_fp = tuning.get("fingerprint")

    seg_path = out / "segmenter" / f"pred-{pred}.npz"
    z = load_npz(seg_path, ["ids", "prob", "p_salt", "fingerprint"], HINT_PREDICT["segmenter"])
    check_pred_fingerprint(seg_path, pred_fingerprint(seg_path, z), tuning_fp)
    ids = [str(i) for i in z["ids"]]
    n = len(ids)
    if n == 0 or z["prob"].ndim != 3 or len(z["prob"]) != n or z["p_salt"].shape != (n,):
        raise UserError(f"{seg_path}: inconsistent shapes (ids {n}, prob {z['prob'].shape}, p_salt {z['p_salt'].shape})")
    if len(set(ids)) != n:
        raise UserError(f"{seg_path}: duplicate ids")

    p_empty, clf_path = load_classifier_pred(out, pred, ids, tuning_fp)
    use_clf = p_empty is not None and tuning.get("classifier", False)
    params = tuning["params"] if use_clf else tuning["params_segmenter_only"]
    masks = apply_rules(z["prob"], z["p_salt"], p_empty if use_clf else None, params)

    sample = Path(sample) if sample else Path(data_dir) / "sample_submission.csv"
    if sample.is_file():
        try:
            sample_ids = list(pd.read_csv(sample, dtype=str, keep_default_na=False)["id"])
        except Exception as e:
            raise UserError(f"{sample}: unreadable sample submission ({type(e).__name__})") from None
        use_sample = set(sample_ids) == set(ids) and len(sample_ids) == n
    else:
        use_sample = False
    if not use_sample:  # not the sample's image folder: sorted ids
        order = np.argsort(np.array(ids), kind="stable")
        ids, masks = [ids[i] for i in order], masks[order]
    path = out / "submission.csv"
    write_submission(path, ids, masks, sample_submission=sample if use_sample else None)

    n_empty = int((masks.reshape(n, -1).sum(axis=1) == 0).sum())
    rec = {"path": str(path), "pred": pred, "n_images": n, "n_empty": n_empty,
           "classifier": str(clf_path) if use_clf else None,
           "mode": "segmenter + classifier" if use_clf else "segmenter only",
           "order": f"sample_submission ({sample})" if use_sample else "sorted ids",
           "params": params, "fingerprint": tuning_fp, "wall_s": round(time.time() - t0, 3)}
    write_json(out / "ensemble" / "submit.json", rec)
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ensemble.submit", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="data folder (Kaggle layout)")
    ap.add_argument("--out", required=True, help="run folder (tuning.json, model predictions)")
    ap.add_argument("--pred", required=True, help="prediction set NAME (OUT/segmenter/pred-NAME.npz)")
    ap.add_argument("--sample", help="sample_submission.csv giving the row order (default DATA/sample_submission.csv)")
    args = ap.parse_args(argv)
    rec = submit(args.data, args.out, args.pred, args.sample)
    if rec["classifier"] is None:
        print(f"note: no classifier prediction used (OUT/classifier/pred-{args.pred}.npz absent or not tuned); "
              "segmenter-only rules", file=sys.stderr)
    print(f"wrote {rec['path']}: {rec['n_images']} images, {rec['n_empty']} empty masks "
          f"({rec['mode']}; {describe(rec['params'])})")
    return 0


if __name__ == "__main__":
    run_cli(main)
