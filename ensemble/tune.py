"""Tune the ensemble's post-processing rules on out-of-fold (OOF) predictions.

python -m ensemble.tune --data DATA --out OUT   ->  OUT/ensemble/tuning.json

Steps, in order; each rule is kept only if it raises the OOF competition score over the step before:
  1. segmenter alone: the mask binarisation threshold (prob > t);
  2. + classifier: zero the mask when the classifier's P(empty) > t_e;
  3. + the segmenter's image head: P(empty) = w * p_empty_clf + (1 - w) * (1 - p_salt), w on a grid
     (w=1: classifier only, w=0: segmenter head only), threshold t_e;
  4. + minimum area: drop predicted masks with fewer than `min_area` pixels.
Only the images' OOF predictions are used, never the images being predicted. The segmenter-only rule set
(steps 1, 3 with w=0, 4) is tuned too, for submissions without a classifier prediction.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ensemble.inputs import load_oof
from salt.cli import UserError, run_cli

THRESHOLDS = np.round(np.arange(0.20, 0.8001, 0.02), 2)      # mask binarisation
EMPTY_THRESHOLDS = np.round(np.arange(0.05, 0.9501, 0.025), 3)  # P(empty) above which a mask is zeroed
WEIGHTS = np.round(np.linspace(0.0, 1.0, 11), 2)             # weight of the classifier in P(empty)
MIN_AREAS = np.array([0, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250, 300])
EPS = 1e-9  # a rule must raise the score by more than this to be kept

# ----------------------------------------------------------------------------------------------- rules
def combined_p_empty(p_empty, p_salt, w) -> np.ndarray:
    """P(empty) = w * p_empty (classifier) + (1 - w) * (1 - p_salt) (segmenter image head), float64 (N,)."""
    w = float(w)
    out = 0.0
    if w > 0:
        if p_empty is None:
            raise UserError("the tuned rule needs the classifier's P(empty), which is missing")
        out = w * np.asarray(p_empty, dtype=np.float64)
    if w < 1:
        out = out + (1.0 - w) * (1.0 - np.asarray(p_salt, dtype=np.float64))
    return np.asarray(out, dtype=np.float64)


def binarise(prob, threshold) -> np.ndarray:
    """prob > threshold, compared in float32 (exact for the float16 probabilities the models write)."""
    return np.asarray(prob, dtype=np.float32) > np.float32(threshold)


def apply_rules(prob, p_salt, p_empty, params) -> np.ndarray:
    """Bool masks (N,101,101) from per-pixel P(salt) `prob`, image-head `p_salt` (N,), classifier
    `p_empty` (N,) or None, and tuned `params` {"threshold", "empty_rule": None|{"w","threshold"}, "min_area"}.

    The single implementation used by tuning (reported scores), the submission and the report.
    """
    masks = binarise(prob, params["threshold"])
    rule = params.get("empty_rule")
    if rule:
        pe = combined_p_empty(p_empty, p_salt, rule["w"])
        masks[pe > rule["threshold"]] = False
    min_area = int(params.get("min_area") or 0)
    if min_area > 0:
        area = masks.reshape(len(masks), -1).sum(axis=1)
        masks[area < min_area] = False
    return masks


# ---------------------------------------------------------------------------------------------- tuning
def _by_fold(scores, fold, folds) -> list[float]:
    """Mean score per fold, in the order of `folds`."""
    return [float(scores[fold == k].mean()) if np.any(fold == k) else float("nan") for k in folds]


def _step(name, scores, fold, folds, kept, params, note="") -> dict:
    """One step's record: its best OOF score (overall, per fold), whether kept, its parameters."""
    d = {"name": name, "kept": bool(kept), "params": params, "note": note,
         "overall": None if scores is None else float(scores.mean()),
         "folds": None if scores is None else _by_fold(scores, fold, folds)}
    return d


def _rules(keep, zero, area, fold, folds, p_salt, p_empty, empty_thresholds, weights, min_areas):
    """Steps 2-4 on precomputed per-image scores: `keep` (mask kept), `zero` (mask zeroed), `area`.

    Returns (steps, params-without-threshold, final per-image scores, sweeps)."""
    cur = keep.mean()
    zeroed = np.zeros(len(keep), dtype=bool)
    rule = None
    steps, sweeps = [], {}
    te = np.asarray(empty_thresholds, dtype=np.float64)

    def grid(pe):  # scores (T,) for each P(empty) threshold, and the zeroed matrix (T,N)
        z = pe[None, :] > te[:, None]
        return np.where(z, zero[None, :], keep[None, :]).mean(axis=1), z

    # step 2: classifier zeroing
    if p_empty is not None:
        pe = np.asarray(p_empty, dtype=np.float64)
        sc, z = grid(pe)
        i = int(np.argmax(sc))
        kept = sc[i] > cur + EPS
        s = np.where(z[i], zero, keep)
        steps.append(_step("+ classifier zeroing", s, fold, folds, kept,
                           {"w": 1.0, "threshold": float(te[i])}))
        sweeps["empty_threshold"] = {"x": te.tolist(), "score": sc.tolist()}
        if kept:
            cur, zeroed, rule = sc[i], z[i], {"w": 1.0, "threshold": float(te[i])}
    else:
        steps.append(_step("+ classifier zeroing", None, fold, folds, False, None, "no classifier"))

    # step 3: combination with the segmenter's image head
    ws = np.asarray(weights, dtype=np.float64) if p_empty is not None else np.array([0.0])
    best, best_w, mat = -1.0, None, []
    for w in ws:
        sc, z = grid(combined_p_empty(p_empty, p_salt, w))
        mat.append(sc.tolist())
        i = int(np.argmax(sc))
        if sc[i] > best + EPS:
            best, best_w, best_i, best_z = sc[i], float(w), i, z[i]
    kept = best > cur + EPS
    name = "+ segmenter image head" if p_empty is None else "+ combined with segmenter image head"
    steps.append(_step(name, np.where(best_z, zero, keep), fold, folds, kept,
                       {"w": best_w, "threshold": float(te[best_i])}))
    sweeps["combination"] = {"w": ws.tolist(), "empty_threshold": te.tolist(), "score": mat,
                             "best_per_w": [max(r) for r in mat]}
    if kept:
        cur, zeroed, rule = best, best_z, {"w": best_w, "threshold": float(te[best_i])}

    # step 4: minimum area
    ma = np.asarray(min_areas, dtype=np.int64)
    z = zeroed[None, :] | (area[None, :] < ma[:, None])
    sc = np.where(z, zero[None, :], keep[None, :]).mean(axis=1)
    i = int(np.argmax(sc))
    kept = sc[i] > cur + EPS
    steps.append(_step("+ minimum area", np.where(z[i], zero, keep), fold, folds, kept,
                       {"min_area": int(ma[i])}))
    sweeps["min_area"] = {"x": ma.tolist(), "score": sc.tolist()}
    min_area = int(ma[i]) if kept else 0
    if kept:
        zeroed = z[i]
    final = np.where(zeroed, zero, keep)
    return steps, {"empty_rule": rule, "min_area": min_area}, final, sweeps


def tune_arrays(truth, prob, p_salt, p_empty, fold, thresholds=THRESHOLDS,
                empty_thresholds=EMPTY_THRESHOLDS, weights=WEIGHTS, min_areas=MIN_AREAS) -> dict:
    """Tune the rules on OOF arrays: truth bool (N,H,W), prob (N,H,W), p_salt (N,), p_empty (N,) or None,
    fold (N,). Returns {"params", "steps", "final", "sweeps", "segmenter_only": {...}}; see module doc."""
    from salt.metric import image_scores

    truth = np.asarray(truth, dtype=bool)
    fold = np.asarray(fold)
    folds = sorted(int(k) for k in np.unique(fold))
    p32 = np.asarray(prob, dtype=np.float32)

    # step 1: threshold sweep (first best wins ties)
    curve, best = [], None
    for t in thresholds:
        s = image_scores(truth, p32 > np.float32(t))
        curve.append(float(s.mean()))
        if best is None or s.mean() > best[1].mean() + EPS:
            best = (float(t), s)
    thr, keep = best
    pred = p32 > np.float32(thr)
    del p32
    zero = image_scores(truth, np.zeros_like(truth))
    area = pred.reshape(len(pred), -1).sum(axis=1)
    step1 = _step("segmenter alone", keep, fold, folds, True, {"threshold": thr})
    sweeps1 = {"threshold": {"x": [float(t) for t in thresholds], "score": curve}}

    def run(pe):
        steps, params, final, sweeps = _rules(keep, zero, area, fold, folds, p_salt, pe,
                                              empty_thresholds, weights, min_areas)
        return {"params": {"threshold": thr, **params}, "steps": [step1] + steps,
                "final": {"overall": float(final.mean()), "folds": _by_fold(final, fold, folds)},
                "sweeps": {**sweeps1, **sweeps}}

    res = run(p_empty)
    res["folds"] = folds
    res["segmenter_only"] = run(None) if p_empty is not None else {
        k: res[k] for k in ("params", "steps", "final", "sweeps")}
    return res


def tune(data_dir, out_dir) -> dict:
    """Tune on OUT's OOF predictions; write and return OUT/ensemble/tuning.json's content."""
    from salt.io import write_json

    t0 = time.time()
    out = Path(out_dir)
    d = load_oof(data_dir, out)
    res = tune_arrays(d["truth"], d["prob"], d["p_salt"], d["p_empty"], d["fold"])
    seg, clf = d["seg_metrics"], d["clf_metrics"]
    doc = {
        **res,
        "classifier": clf is not None,
        "params_segmenter_only": res["segmenter_only"]["params"],
        "fingerprint": d["fingerprint"],
        "fingerprints": {"expected": d["fingerprint"], "segmenter": seg.get("fingerprint"),
                         "classifier": None if clf is None else clf.get("fingerprint")},
        "n_images": len(d["ids"]),
        "grids": {"threshold": THRESHOLDS.tolist(), "empty_threshold": EMPTY_THRESHOLDS.tolist(),
                  "w": WEIGHTS.tolist(), "min_area": MIN_AREAS.tolist()},
        "wall_s": round(time.time() - t0, 3),
    }
    write_json(out / "ensemble" / "tuning.json", doc)
    return doc


def describe(params) -> str:
    """One-line description of a parameter set."""
    r = params.get("empty_rule")
    rule = "no empty-image rule" if not r else f"zero if P(empty) > {r['threshold']:g} (w_classifier={r['w']:g})"
    return f"threshold {params['threshold']:g}, {rule}, min area {params.get('min_area', 0)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ensemble.tune", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="data folder (Kaggle layout) with the training masks")
    ap.add_argument("--out", required=True, help="run folder with segmenter/ and classifier/ outputs")
    args = ap.parse_args(argv)
    doc = tune(args.data, args.out)
    for s in doc["steps"]:
        score = "skipped" if s["overall"] is None else f"{s['overall']:.4f}"
        print(f"  {s['name']:<40} OOF {score:>8}  {'kept' if s['kept'] else 'rejected'}")
    print(f"wrote {Path(args.out) / 'ensemble' / 'tuning.json'}: OOF score {doc['final']['overall']:.4f} "
          f"({describe(doc['params'])}; {doc['wall_s']:.1f}s)")
    return 0


if __name__ == "__main__":
    run_cli(main)
