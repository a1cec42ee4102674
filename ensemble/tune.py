"""Tune the ensemble's post-processing rules on out-of-fold (OOF) predictions, and keep a rule only when it
raises the score on folds it was not tuned on.

python -m ensemble.tune --data DATA --out OUT   ->  OUT/ensemble/tuning.json

The rules, applied in this order (`apply_rules`):
  threshold   the mask binarisation threshold, prob > t (always kept);
  classifier  zero the mask when the classifier's P(empty) > t_e (w = 1);
  combined    P(empty) = w * p_empty_clf + (1 - w) * (1 - p_salt), w on a grid (w=1: the classifier only,
              w=0: the segmenter's own image head only), threshold t_e; supersedes `classifier` when kept;
  min_area    drop predicted masks with fewer than `min_area` pixels;
  vertical    (only with OUT/mosaic.csv) a labelled tile whose mask is vertical (all rows equal, not empty,
              not all salt) continues into the unlabelled tiles below it, down the column
              (salt.mosaic.propagate_vertical). Out of fold, the labelled tiles of a tile in fold k are the
              training tiles of the other folds, as they were for the model that predicted it; on test
              every training tile is labelled;
  constant    an image whose pixels are all equal is predicted empty.
The last two do not depend on the models ("tile rules"): the submission applies them after the others.

What the rules are tuned for: the submission (ensemble.submit) applies them once, to the mean of the fold
models' probabilities (pixel P(salt), image-head P(salt) and P(empty), each averaged over the models). The
out-of-fold prediction of an image is the mean of its own fold's models (the snapshot rounds, with the
same flip TTA), made by models that never saw it: the same kind of prediction and the same rules, with
fewer models in the mean. Nothing here takes one fold's decision at a time or votes between folds; a mean
of more models is smoother, which the nested selection below cannot see, since no image has an
out-of-fold prediction from more than one fold.

How a rule is decided, given the rules already kept (nested cross-validation): for each outer fold k,
the parameters of the kept rules, with and without the new rule, are fitted on the other folds (each
rule's parameters in the order above, given those before it; the tile rules have none) and both are
scored on fold k. The rule is kept only if the mean of these per-fold gains is positive and larger than
its standard error (sample std of the gains / sqrt(number of folds)). A rule that only fits noise of the
images it is tuned on gains in-sample but not on held-out folds. Parameters are then fitted on all
folds. Every step records the nested scores (per fold, overall), the gains, their mean and standard
error, and the in-sample score (tuned and scored on all folds) for comparison.

All of this runs on per-image tables computed once: for each mask threshold of the grid, each image's
score of (prob > t) and predicted area; the score of an empty prediction; the score of the propagated
vertical mask where there is one; which images are constant. A fit is then a few means over them.

The segmenter-only rule set (no classifier) is tuned the same way, for submissions without a classifier.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble.inputs import load_mosaic, load_oof, mosaic_path
from salt.cli import UserError, run_cli
from salt.layout import Out

THRESHOLDS = np.round(np.arange(0.20, 0.9401, 0.02), 2)      # mask binarisation
EMPTY_THRESHOLDS = np.round(np.arange(0.05, 0.9501, 0.025), 3)  # P(empty) above which a mask is zeroed
WEIGHTS = np.round(np.linspace(0.0, 1.0, 11), 2)             # weight of the classifier in P(empty)
MIN_AREAS = np.array([0, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250, 300])
EPS = 1e-12  # a mean gain must exceed this (besides its standard error); scores equal within it are ties

JOIN = ("mean: ensemble.submit applies these rules once, to the mean of the fold models' probabilities; they are "
        "tuned on out-of-fold predictions, the mean of one fold's own models for each image")
RULES = ("threshold", "classifier", "combined", "min_area", "vertical", "constant")
SELECTION = ("nested: for each outer fold, the rules are fitted on the other folds and scored on it; a rule is "
             "kept when the mean per-fold gain is > 0 and > its standard error (std of the gains, ddof=1, "
             "/ sqrt(folds))")


def step_name(rule, classifier=True) -> str:
    return {"threshold": "segmenter alone", "classifier": "+ classifier zeroing",
            "combined": "+ combined with segmenter image head" if classifier else "+ segmenter image head",
            "min_area": "+ minimum area", "vertical": "+ mosaic: vertical masks continue down",
            "constant": "+ constant images empty"}[rule]


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


@dataclass
class TileContext:
    """What the tile rules need beside the predictions, for the images `ids` (in the order of the
    predictions): `constant` bool (N,), the image is constant (None: images unknown); `propagated`
    {id: bool (101, 101)}, the vertical masks that flow into unlabelled tiles from labelled ones above
    (None: no mosaic). Make one with `oof_context` or `submit_context`."""
    ids: list
    constant: np.ndarray | None = None
    propagated: dict | None = None


def _constant(images):
    from salt.mosaic import constant_images

    return None if images is None else constant_images(images)


def oof_context(ids, images, fold, truth, mosaic_df=None) -> TileContext:
    """The tile-rule context of out-of-fold predictions: a tile of fold k sees the labels (true masks) of
    the training tiles of the other folds, as the model that predicted it did."""
    from salt.mosaic import propagate_vertical

    ids = [str(i) for i in ids]
    prop = None
    if mosaic_df is not None:
        fold = np.asarray(fold)
        masks = dict(zip(ids, np.asarray(truth, dtype=bool)))
        prop = {}
        for k in np.unique(fold):
            here = {i for i, f in zip(ids, fold) if f == k}
            out = propagate_vertical(masks, mosaic_df, known_ids=[i for i in ids if i not in here])
            prop.update({i: m for i, m in out.items() if i in here})
    return TileContext(ids, _constant(images), prop)


def submit_context(ids, images, train_ids, train_masks, mosaic_df=None) -> TileContext:
    """The tile-rule context of test predictions (the submission): every training tile is labelled."""
    from salt.mosaic import propagate_vertical

    ids = [str(i) for i in ids]
    prop = None
    if mosaic_df is not None:
        masks = dict(zip(map(str, train_ids), np.asarray(train_masks, dtype=bool)))
        want = set(ids)
        prop = {i: m for i, m in propagate_vertical(masks, mosaic_df).items() if i in want}
    return TileContext(ids, _constant(images), prop)


def model_rules(prob, p_salt, p_empty, params) -> np.ndarray:
    """The rules that depend on the models: bool masks (N,101,101) from per-pixel P(salt) `prob`,
    image-head `p_salt` (N,), classifier `p_empty` (N,) or None, and `params`
    {"threshold", "empty_rule": None|{"w","threshold"}, "min_area"}."""
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


def tile_rules(masks, params, context=None) -> np.ndarray:
    """The rules that do not depend on the models, in place on bool masks (N,101,101):
    params["vertical"]: a propagated vertical mask replaces the prediction; params["constant_empty"]:
    constant images are empty. `context` (TileContext) must cover the masks' images when either is on."""
    vertical, constant = bool(params.get("vertical")), bool(params.get("constant_empty"))
    if (vertical or constant) and (context is None or len(context.ids) != len(masks)):
        raise UserError("the tuned rules need the images' ids (mosaic rules), which were not given")
    if vertical:
        if context.propagated is None:
            raise UserError("the tuned rules propagate vertical masks down the mosaic, but no mosaic was given "
                            "(OUT/mosaic.csv)")
        for k, i in enumerate(context.ids):
            m = context.propagated.get(i)
            if m is not None:
                masks[k] = m
    if constant:
        if context.constant is None:
            raise UserError("the tuned rules make constant images empty, but the images were not given")
        masks[np.asarray(context.constant, dtype=bool)] = False
    return masks


def apply_rules(prob, p_salt, p_empty, params, context=None) -> np.ndarray:
    """Bool masks (N,101,101) under the tuned `params` (tuning.json's "params": threshold, empty_rule,
    min_area, vertical, constant_empty): `model_rules`, then `tile_rules` with `context` (a TileContext,
    needed only when a tile rule is on).

    The single implementation used by tuning (its scores are checked against it), the submission (on the
    mean of the fold models' probabilities, a chunk of images at a time) and the report."""
    return tile_rules(model_rules(prob, p_salt, p_empty, params), params, context)


# ------------------------------------------------------------------------------------ per-image tables
def _scores_from_counts(inter, union) -> np.ndarray:
    """salt.metric's image score from integer intersection and union counts (any shape)."""
    from salt.metric import THRESHOLDS as IOU

    t100 = np.round(IOU * 100).astype(np.int64)
    passed = (100 * inter[..., None]) > (t100 * union[..., None])
    s = passed.mean(axis=-1)
    s[union == 0] = 1.0
    return s


def threshold_tables(truth, prob, thresholds, chunk=256) -> tuple[np.ndarray, np.ndarray]:
    """(score, area), each (T, N): image score and predicted area of (prob > t) for every threshold t.

    One pass over the pixels: each pixel's count of thresholds below it (prob > t_j iff j < count, in
    float32 as `binarise`), histogrammed per image."""
    thr = np.asarray(thresholds, dtype=np.float32)
    if thr.ndim != 1 or not len(thr) or np.any(np.diff(thr) <= 0):
        raise ValueError(f"thresholds must be increasing, got {thresholds}")
    n, nt = len(truth), len(thr)
    inter = np.zeros((n, nt), np.int64)
    area = np.zeros((n, nt), np.int64)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        p = np.asarray(prob[lo:hi], dtype=np.float32).reshape(hi - lo, -1)
        t = np.asarray(truth[lo:hi], dtype=bool).reshape(hi - lo, -1)
        b = np.searchsorted(thr, p, side="left") + (np.arange(hi - lo) * (nt + 1))[:, None]
        for counts, sel in ((area, None), (inter, t)):
            h = np.bincount(b.ravel() if sel is None else b[sel], minlength=(hi - lo) * (nt + 1))
            above = np.cumsum(h.reshape(hi - lo, nt + 1)[:, ::-1], axis=1)[:, ::-1]  # pixels with count >= v
            counts[lo:hi] = above[:, 1:]
    truth_area = np.asarray(truth, dtype=bool).reshape(n, -1).sum(axis=1)
    score = _scores_from_counts(inter, truth_area[:, None] + area - inter)
    return score.T.copy(), area.T.copy()


@dataclass
class Tables:
    """Per-image tables the rules are tuned on (N images, T thresholds)."""
    thresholds: np.ndarray   # (T,) float64
    score: np.ndarray        # (T, N) score of prob > t
    area: np.ndarray         # (T, N) its area in pixels
    empty: np.ndarray        # (N,) score of an empty prediction
    fold: np.ndarray         # (N,)
    has_vertical: np.ndarray | None = None  # (N,) a vertical mask is propagated into it (None: no mosaic)
    vertical: np.ndarray | None = None      # (N,) score of that mask (0 where none)
    constant: np.ndarray | None = None      # (N,) the image is constant (None: images unknown)

    @property
    def n(self) -> int:
        return len(self.fold)


def make_tables(truth, prob, fold, thresholds=THRESHOLDS, context=None) -> Tables:
    from salt.metric import image_scores

    truth = np.asarray(truth, dtype=bool)
    score, area = threshold_tables(truth, prob, thresholds)
    empty = (~truth.reshape(len(truth), -1).any(axis=1)).astype(np.float64)
    tab = Tables(np.asarray(thresholds, dtype=np.float64), score, area, empty, np.asarray(fold))
    if context is not None:
        if context.propagated is not None:
            pos = {i: k for k, i in enumerate(context.ids)}
            idx = np.array(sorted(pos[i] for i in context.propagated if i in pos), dtype=np.int64)
            tab.has_vertical = np.zeros(len(truth), bool)
            tab.vertical = np.zeros(len(truth))
            if len(idx):
                tab.has_vertical[idx] = True
                pred = np.stack([context.propagated[context.ids[k]] for k in idx])
                tab.vertical[idx] = image_scores(truth[idx], pred)
        if context.constant is not None:
            tab.constant = np.asarray(context.constant, dtype=bool)
    return tab


# ---------------------------------------------------------------------------------------------- fitting
def _first_best(sc) -> int:
    """Index of the first grid value whose score is the best (within EPS)."""
    sc = np.asarray(sc, dtype=np.float64)
    return int(np.flatnonzero(sc >= sc.max() - EPS)[0])


def _fit(tab, rules, on, p_salt, p_empty, grids):
    """Fit the parameters of `rules` on the images `on` (bool (N,)), each rule in order given those before.
    The tile rules have no parameters and override their images' scores, so the others are fitted on the
    images they leave alone. Returns (params, per-image scores (N,) under them, sweeps of the fit)."""
    n = tab.n
    params = {"threshold": None, "empty_rule": None, "min_area": 0, "vertical": False, "constant_empty": False}
    over, over_score = np.zeros(n, bool), np.zeros(n)
    if "vertical" in rules:
        over |= tab.has_vertical
        over_score = np.where(tab.has_vertical, tab.vertical, over_score)
        params["vertical"] = True
    if "constant" in rules:
        over_score = np.where(tab.constant, tab.empty, over_score)
        over |= tab.constant
        params["constant_empty"] = True
    n_on = int(on.sum())
    if n_on == 0:
        raise ValueError("no image to fit on")
    f = np.flatnonzero(on & ~over)
    fixed = float(over_score[on & over].sum())

    def mean(mat):  # (G, len(f)) -> (G,) mean score over `on`, the overridden images included
        return (np.asarray(mat, dtype=np.float64).sum(axis=1) + fixed) / n_on

    sc = mean(tab.score[:, f])
    i = _first_best(sc)
    params["threshold"] = float(tab.thresholds[i])
    sweeps = {"threshold": {"x": tab.thresholds.tolist(), "score": sc.tolist()}}
    keep, area, zero = tab.score[i], tab.area[i], tab.empty
    zeroed = np.zeros(n, bool)
    te = np.asarray(grids["empty_threshold"], dtype=np.float64)

    def empty_grid(pe):
        return mean(np.where(pe[None, f] > te[:, None], zero[None, f], keep[None, f]))

    if "classifier" in rules:
        pe = np.asarray(p_empty, dtype=np.float64)
        sc = empty_grid(pe)
        j = _first_best(sc)
        params["empty_rule"] = {"w": 1.0, "threshold": float(te[j])}
        zeroed = pe > te[j]
        sweeps["empty_threshold"] = {"x": te.tolist(), "score": sc.tolist()}
    if "combined" in rules:
        ws = np.asarray(grids["w"] if p_empty is not None else [0.0], dtype=np.float64)
        pes = [combined_p_empty(p_empty, p_salt, w) for w in ws]
        mat = np.stack([empty_grid(pe) for pe in pes])  # (W, TE)
        wi, ti = divmod(_first_best(mat.ravel()), len(te))
        params["empty_rule"] = {"w": float(ws[wi]), "threshold": float(te[ti])}
        zeroed = pes[wi] > te[ti]
        sweeps["combination"] = {"w": ws.tolist(), "empty_threshold": te.tolist(), "score": mat.tolist(),
                                 "best_per_w": mat.max(axis=1).tolist()}
    if "min_area" in rules:
        ma = np.asarray(grids["min_area"], dtype=np.int64)
        z = zeroed[None, f] | (area[None, f] < ma[:, None])
        sc = mean(np.where(z, zero[None, f], keep[None, f]))
        j = _first_best(sc)
        params["min_area"] = int(ma[j])
        zeroed = zeroed | (area < ma[j])
        sweeps["min_area"] = {"x": ma.tolist(), "score": sc.tolist()}
    s = np.where(over, over_score, np.where(zeroed, zero, keep))
    return params, s, sweeps


def by_fold(scores, fold, folds) -> list[float]:
    """Mean score per fold, in the order of `folds`."""
    return [float(scores[fold == k].mean()) if np.any(fold == k) else float("nan") for k in folds]


def decide(gains) -> tuple[bool, float, float]:
    """(keep, mean gain, standard error): keep when the mean per-fold gain is positive (above EPS) and
    larger than its standard error, std(gains, ddof=1) / sqrt(len(gains))."""
    g = np.asarray(gains, dtype=np.float64)
    m = float(g.mean())
    se = float(g.std(ddof=1) / np.sqrt(len(g))) if len(g) > 1 else float("inf")
    return bool(m > EPS and m > se), m, se


def _evaluate(tab, rules, folds, p_salt, p_empty, grids) -> dict:
    """A rule set fitted on all folds (in-sample) and, per outer fold, on the others (nested)."""
    params, s_in, sweeps = _fit(tab, rules, np.ones(tab.n, bool), p_salt, p_empty, grids)
    nested = np.empty(tab.n)
    nested_params = []
    for k in folds:
        held = tab.fold == k
        pk, sk, _ = _fit(tab, rules, ~held, p_salt, p_empty, grids)
        nested[held] = sk[held]
        nested_params.append(pk)
    return {"rules": list(rules), "params": params, "sweeps": sweeps, "in_sample": s_in, "nested": nested,
            "nested_params": nested_params}


def _own_params(rule, params, tab) -> dict:
    """The parameters of one rule, out of a whole fitted set."""
    if rule == "threshold":
        return {"threshold": params["threshold"]}
    if rule in ("classifier", "combined"):
        return dict(params["empty_rule"])
    if rule == "min_area":
        return {"min_area": params["min_area"]}
    if rule == "vertical":
        return {"vertical": True, "tiles": int(tab.has_vertical.sum())}
    return {"constant_empty": True, "images": int(tab.constant.sum())}


def _tune(tab, p_salt, p_empty, folds, grids) -> dict:
    """The rules decided one by one (module doc). Returns {params, steps, final, sweeps, rules}."""
    fold = tab.fold
    clf = p_empty is not None

    def scores(v):
        return {"overall": float(v.mean()), "folds": by_fold(v, fold, folds)}

    cur = _evaluate(tab, ["threshold"], folds, p_salt, p_empty, grids)
    steps = [{"name": step_name("threshold", clf), "rule": "threshold", "kept": True,
              "params": _own_params("threshold", cur["params"], tab), "note": "always kept",
              **scores(cur["in_sample"]), "nested": {**scores(cur["nested"]), "params": cur["nested_params"]},
              "gains": None, "gain_mean": None, "gain_se": None, "in_sample_gain": None,
              "rules": cur["rules"], "all_params": cur["params"]}]
    sweeps = {"threshold": cur["sweeps"]["threshold"]}
    missing = {"classifier": None if clf else "no classifier",
               "vertical": None if tab.has_vertical is not None else "no mosaic (OUT/mosaic.csv)",
               "constant": None if tab.constant is not None else "images not given"}
    for rule in RULES[1:]:
        name = step_name(rule, clf)
        if missing.get(rule):
            steps.append({"name": name, "rule": rule, "kept": False, "params": None, "note": missing[rule],
                          "overall": None, "folds": None, "nested": None, "gains": None, "gain_mean": None,
                          "gain_se": None, "in_sample_gain": None, "rules": None, "all_params": None})
            continue
        rules = [r for r in cur["rules"] if not (rule == "combined" and r == "classifier")] + [rule]
        new = _evaluate(tab, rules, folds, p_salt, p_empty, grids)
        gains = [a - b for a, b in zip(by_fold(new["nested"], fold, folds), by_fold(cur["nested"], fold, folds))]
        kept, mean, se = decide(gains)
        note = "supersedes the classifier zeroing" if kept and "classifier" in cur["rules"] and rule == "combined" \
            else ""
        steps.append({"name": name, "rule": rule, "kept": kept, "params": _own_params(rule, new["params"], tab),
                      "note": note, **scores(new["in_sample"]),
                      "nested": {**scores(new["nested"]), "params": new["nested_params"]},
                      "gains": gains, "gain_mean": mean, "gain_se": se,
                      "in_sample_gain": float(new["in_sample"].mean() - cur["in_sample"].mean()),
                      "rules": rules, "all_params": new["params"]})
        sweep = {"classifier": "empty_threshold", "combined": "combination", "min_area": "min_area"}.get(rule)
        if sweep:
            sweeps[sweep] = new["sweeps"][sweep]
        if kept:
            cur = new
    final = {**scores(cur["in_sample"]), "nested": scores(cur["nested"])}
    return {"params": cur["params"], "steps": steps, "final": final, "sweeps": sweeps, "rules": cur["rules"]}


def tune_arrays(truth, prob, p_salt, p_empty, fold, context=None, thresholds=THRESHOLDS,
                empty_thresholds=EMPTY_THRESHOLDS, weights=WEIGHTS, min_areas=MIN_AREAS) -> dict:
    """Tune the rules on OOF arrays: truth bool (N,H,W), prob (N,H,W), p_salt (N,), p_empty (N,) or None,
    fold (N,), `context` (TileContext from `oof_context`, for the tile rules; None: those are skipped).
    Returns {"params", "steps", "final", "sweeps", "rules", "folds", "segmenter_only": {...}}; see the
    module doc."""
    fold = np.asarray(fold)
    folds = sorted(int(k) for k in np.unique(fold))
    if len(folds) < 2:
        raise UserError(f"nested tuning needs at least 2 folds, got {len(folds)}")
    tab = make_tables(truth, prob, fold, thresholds, context)
    grids = {"empty_threshold": empty_thresholds, "w": weights, "min_area": min_areas}
    p_salt = np.asarray(p_salt, dtype=np.float64)
    res = _tune(tab, p_salt, p_empty, folds, grids)
    res["folds"] = folds
    res["segmenter_only"] = _tune(tab, p_salt, None, folds, grids) if p_empty is not None else {
        k: res[k] for k in ("params", "steps", "final", "sweeps", "rules")}
    return res


# ------------------------------------------------------------------------------------------------ files
def tune(data_dir, out_dir) -> dict:
    """Tune on OUT's OOF predictions; write and return OUT/ensemble/tuning.json's content."""
    from salt.io import write_json

    t0 = time.time()
    out = Path(out_dir)
    d = load_oof(data_dir, out)
    mosaic = load_mosaic(out)
    context = oof_context(d["ids"], d["images"], d["fold"], d["truth"], mosaic)
    res = tune_arrays(d["truth"], d["prob"], d["p_salt"], d["p_empty"], d["fold"], context)
    seg, clf = d["seg_metrics"], d["clf_metrics"]
    doc = {
        **res,
        "classifier": clf is not None,
        "params_segmenter_only": res["segmenter_only"]["params"],
        "fingerprint": d["fingerprint"],
        "fingerprints": {"expected": d["fingerprint"], "segmenter": seg.get("fingerprint"),
                         "classifier": None if clf is None else clf.get("fingerprint")},
        "n_images": len(d["ids"]),
        "mosaic": str(mosaic_path(out)) if mosaic is not None else None,
        "n_propagated": None if context.propagated is None else len(context.propagated),
        "n_constant": int(context.constant.sum()),
        "selection": SELECTION,
        "join": JOIN,
        "grids": {"threshold": THRESHOLDS.tolist(), "empty_threshold": EMPTY_THRESHOLDS.tolist(),
                  "w": WEIGHTS.tolist(), "min_area": MIN_AREAS.tolist()},
        "wall_s": round(time.time() - t0, 3),
    }
    write_json(Out(out).tuning_json, doc)
    return doc


def describe(params) -> str:
    """One-line description of a parameter set."""
    r = params.get("empty_rule")
    rule = "no empty-image rule" if not r else f"zero if P(empty) > {r['threshold']:g} (w_classifier={r['w']:g})"
    text = f"threshold {params['threshold']:g}, {rule}, min area {params.get('min_area', 0)}"
    if params.get("vertical"):
        text += ", vertical masks continue down the mosaic"
    if params.get("constant_empty"):
        text += ", constant images empty"
    return text


def _num(v, fmt="{:.4f}") -> str:
    return "-" if v is None else fmt.format(v)


def steps_table(steps) -> str:
    """The tuning steps as a plain-text table (nested score, gain +- standard error, in-sample score)."""
    lines = [f"  {'step':<40} {'nested':>7} {'gain +- s.e.':>18} {'in-sample':>9}  decision"]
    for s in steps:
        nested = s.get("nested") or {}
        gain = "" if s.get("gain_mean") is None else f"{s['gain_mean']:+.4f} +- {s['gain_se']:.4f}"
        decision = "kept" if s["kept"] else ("skipped: " + s.get("note", "") if s["overall"] is None else "rejected")
        lines.append(f"  {s['name']:<40} {_num(nested.get('overall')):>7} {gain:>18} {_num(s['overall']):>9}  "
                     f"{decision}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ensemble.tune", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="data folder (Kaggle layout) with the training masks")
    ap.add_argument("--out", required=True, help="run folder with segmenter/ and classifier/ outputs")
    args = ap.parse_args(argv)
    doc = tune(args.data, args.out)
    print(steps_table(doc["steps"]))
    fin = doc["final"]
    print(f"wrote {Out(args.out).tuning_json}: OOF score {fin['nested']['overall']:.4f} nested "
          f"({fin['overall']:.4f} in-sample; {describe(doc['params'])}; {doc['wall_s']:.1f}s)")
    return 0


if __name__ == "__main__":
    run_cli(main)
