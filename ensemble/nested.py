"""Which rules (ensemble.rules) are kept, and their parameters: each rule kept only when it raises the
score on folds it was not tuned on.

How a rule is decided, given the rules already kept (nested cross-validation): for each outer fold k,
the parameters of the kept rules, with and without the new rule, are fitted on the other folds (each
rule's parameters in the order of ensemble.rules, given those before it; the tile rules have none) and both are
scored on fold k. The rule is kept only if the mean of these per-fold gains is positive and larger than
its standard error (sample std of the gains / sqrt(number of folds)). A rule that only fits noise of the
images it is tuned on gains in-sample but not on held-out folds. Parameters are then fitted on all
folds. Every step records the nested scores (per fold, overall), the gains, their mean and standard
error, and the in-sample score (tuned and scored on all folds) for comparison.

All of this runs on per-image tables computed once (ensemble.tables): a fit is a few means over them.

The segmenter-only rule set (no classifier) is tuned the same way, for submissions without a classifier.
"""
from __future__ import annotations

import numpy as np

from ensemble.rules import combined_p_empty
from ensemble.tables import MASK_THRESHOLDS, make_tables
from salt.cli import UserError

EMPTY_THRESHOLDS = np.round(np.arange(0.05, 0.9501, 0.025), 3)  # P(empty) above which a mask is zeroed
CLASSIFIER_WEIGHTS = np.round(np.linspace(0.0, 1.0, 11), 2)  # weight of the classifier in P(empty)
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


def tune_arrays(truth, prob, p_salt, p_empty, fold, context=None, thresholds=MASK_THRESHOLDS,
                empty_thresholds=EMPTY_THRESHOLDS, weights=CLASSIFIER_WEIGHTS, min_areas=MIN_AREAS) -> dict:
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
