"""Every score the report shows, computed once (``Scores``), and the labels of the scores that appear in more
than one section: one quantity, one label, one value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensemble.tuning_record import alone_params, nested, tuning_final, tuning_folds, tuning_steps


SEG_NESTED = "segmenter alone, nested"
SEG_IN_SAMPLE = "segmenter alone, in-sample"
FINAL_IN_SAMPLE = "final rules, in-sample"


@dataclass
class Scores:
    """Every score the page shows, read once: per image as the tuning scored its out-of-fold masks
    (ensemble.tuned), the nested ones from tuning.json. Each section takes its numbers
    from here, so one quantity has one value on the whole page."""
    folds: list           # fold numbers, in order
    fold: np.ndarray      # (N,) each image's fold
    empty: np.ndarray     # (N,) the truth is empty
    final: np.ndarray     # (N,) each image's score under the chosen rules, fitted on all folds (in-sample)
    alone: np.ndarray     # (N,) each image's score of the segmenter alone at `alone_threshold` (in-sample)
    alone_threshold: float
    final_nested: dict    # {"overall", "folds"}: the chosen rules, each fold tuned on the others ({} if none)
    alone_nested: dict    # the same for the segmenter alone (the mask threshold only)
    clf: dict | None      # classifier_scores of the out-of-fold P(empty), None without a classifier

    def by_fold(self, per_image, only=None) -> list[float]:
        """Mean of a per-image array in each fold (over the images `only` selects, if given)."""
        sel = np.ones(len(self.fold), bool) if only is None else np.asarray(only, bool)
        return [float(per_image[(self.fold == k) & sel].mean()) if np.any((self.fold == k) & sel)
                else float("nan") for k in self.folds]


def classifier_scores(truth_empty, p_empty, fold, folds) -> dict:
    """ROC AUC, accuracy at 0.5 and log-loss of the out-of-fold P(empty), per fold and over all folds
    pooled, as the classifier's trainer defines them: {"folds": {k: {...}}, "pooled": {...}}."""
    from sklearn.metrics import log_loss, roc_auc_score

    def one(t, p):
        p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
        return {"auc": float(roc_auc_score(t, p)) if 0 < t.sum() < len(t) else float("nan"),
                "accuracy": float(np.mean((p > 0.5) == t)),
                "logloss": float(log_loss(t, p, labels=[False, True])) if len(t) else float("nan"),
                "images": int(len(t))}

    truth_empty, fold = np.asarray(truth_empty, bool), np.asarray(fold)
    return {"folds": {k: one(truth_empty[fold == k], p_empty[fold == k]) for k in folds},
            "pooled": one(truth_empty, p_empty)}


def compute_scores(d, tuning, tuned) -> Scores:
    """The page's scores: the per-image ones as the tuning wrote them (``tuned``, ensemble.tuned), the
    nested ones from tuning.json, the classifier's from its out-of-fold P(empty) (``d``, load_oof)."""
    folds = tuning_folds(tuning) or sorted(int(k) for k in np.unique(d["fold"]))
    n = len(d["ids"])
    empty = ~d["truth"].reshape(n, -1).any(axis=1)
    params = alone_params(tuning)
    steps = tuning_steps(tuning)
    clf = None if d["p_empty"] is None else classifier_scores(empty, np.asarray(d["p_empty"], np.float64),
                                                              d["fold"], folds)
    return Scores(folds, np.asarray(d["fold"]), empty, tuned["final_score"], tuned["alone_score"],
                  float(params["threshold"]), nested(tuning_final(tuning)), nested(steps[0]) if steps else {}, clf)
